#!/usr/bin/env bash
# The air-gapped image build: every wheel gathered on this host, the image built with no network.
#
#   deploy/build-image.sh                                # wheels + build on python:3.11-slim (if present locally)
#   deploy/build-image.sh --debootstrap                  # also make a Debian base image (root; no registry needed)
#   deploy/build-image.sh --base-image my/python:3.11    # any Debian-like image with python3 and its venv module
#   deploy/build-image.sh --tag textcnn:1.2 --wheels-only
#
# Why: a deployment host often reaches no registry (no Docker Hub, no PyPI). The wheels come from
# `pip download` on a machine that does (here, or one beside it: copy deploy/wheels/ over), and the
# Dockerfile's OFFLINE=1 installs from them alone. The image is the same as a registry build's but
# for its base. Needs: docker (a running daemon), python3 with pip, the same Python minor version as
# the base image (the wheels are for this host's Python); --debootstrap needs root and debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=textcnn:latest
base=python:3.11-slim
debootstrap_base=0
wheels_only=0
mirror=""
torch_version=2.13.0
python=${PYTHON:-python3}
docker=${DOCKER:-docker}  # the client; DOCKER=/usr/bin/docker picks Debian's

die() { echo "build-image: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) tag=${2:?--tag needs a value}; shift 2 ;;
        --base-image) base=${2:?--base-image needs a value}; shift 2 ;;
        --debootstrap) debootstrap_base=1; shift ;;
        --mirror) mirror=${2:?--mirror needs a value}; shift 2 ;;
        --torch) torch_version=${2:?--torch needs a value}; shift 2 ;;
        --wheels-only) wheels_only=1; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# 1. Wheels: torch's CPU build and the project's serving dependencies, and setuptools to build the
#    project itself inside the image. pip takes what is already on this disk first (its find-links).
wheels=deploy/wheels
echo "build-image: gathering wheels into $wheels/ ($("$python" --version 2>&1))"
log=$(mktemp "${TMPDIR:-/tmp}/textcnn-wheels.XXXXXX")
"$python" -m pip download --quiet --disable-pip-version-check --dest "$wheels" \
    "torch==$torch_version" ".[serve]" "setuptools>=68" wheel >"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; rm -f "$log"; die "pip download failed (above): the wheels must come from an index or a find-links folder"; }
rm -f "$log"
echo "build-image: $(find "$wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$wheels" | cut -f1)"
[ "$wheels_only" = 1 ] && exit 0

command -v "$docker" >/dev/null || die "no docker client ($docker)"
"$docker" info >/dev/null 2>&1 || die "the Docker daemon does not answer (DOCKER_HOST=${DOCKER_HOST:-default})"

# 2. A base image with no registry: a minimal Debian made by debootstrap, imported as an image.
if [ "$debootstrap_base" = 1 ]; then
    base=textcnn-base:bookworm
    if "$docker" image inspect "$base" >/dev/null 2>&1; then
        echo "build-image: base image $base is already here"
    else
        [ "$(id -u)" = 0 ] || die "--debootstrap needs root (debootstrap chroots)"
        command -v debootstrap >/dev/null || die "--debootstrap needs debootstrap (apt-get install debootstrap)"
        if [ -z "$mirror" ]; then  # the mirror apt already uses here, else Debian's own
            mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
                /etc/apt/sources.list.d/ 2>/dev/null | head -n1 | awk '{print $2}' || true)
            mirror=${mirror:-http://deb.debian.org/debian}
        fi
        rootfs=$(mktemp -d "${TMPDIR:-/tmp}/textcnn-rootfs.XXXXXX")
        chmod 755 "$rootfs"  # it becomes the image's /: mktemp's 0700 would lock out the non-root user
        trap 'rm -rf "$rootfs"' EXIT
        echo "build-image: debootstrap bookworm from $mirror (about a minute)"
        debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$mirror" \
            >"$rootfs.log" 2>&1 || { tail -n 5 "$rootfs.log" >&2; die "debootstrap failed (above)"; }
        rm -f "$rootfs.log"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -c . | "$docker" import --change 'CMD ["python3"]' - "$base" >/dev/null
        echo "build-image: imported $base"
    fi
fi
"$docker" image inspect "$base" >/dev/null 2>&1 \
    || die "base image '$base' is not here and an air-gapped build cannot pull it: use --debootstrap or --base-image"

# The wheels are built for this host's Python; the image must run the same minor version.
host_py=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
image_py=$("$docker" run --rm --network none --entrypoint python3 "$base" \
    -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "'$base' has no python3"
[ "$host_py" = "$image_py" ] || die "wheels are for Python $host_py but '$base' runs Python $image_py"

# 3. The image, with no network at all.
echo "build-image: building $tag on $base (OFFLINE=1)"
started=$SECONDS
# BuildKit: through the buildx plugin where it is installed, else the builder built into a Docker
# 20.x client (Debian's docker.io); the classic builder only as a last resort: on a vfs daemon it
# copies the whole image for every instruction (minutes instead of about one).
if ! "$docker" buildx version >/dev/null 2>&1; then
    client=$("$docker" version --format '{{.Client.Version}}' 2>/dev/null || echo 0)
    if [ "${client%%.*}" -lt 23 ] 2>/dev/null; then
        export DOCKER_BUILDKIT=1
    else
        export DOCKER_BUILDKIT=0
        echo "build-image: no BuildKit in docker $client (no buildx plugin): the classic builder, slower" >&2
    fi
fi
"$docker" build --network none --build-arg OFFLINE=1 --build-arg "BASE_IMAGE=$base" \
    --build-arg "TORCH_VERSION=$torch_version" --tag "$tag" .
size=$("$docker" image inspect --format '{{.Size}}' "$tag")
echo "build-image: $tag built in $((SECONDS - started)) s, $(((size + 500000) / 1000000)) MB"
