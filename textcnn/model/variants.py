"""The names configs accept, importable without torch so that `textcnn --help` answers at once."""

POOLINGS = ("max", "avg", "kmax", "chunk-max", "logsumexp", "max+avg", "local-max", "local-avg", "padded-avg")
VARIANTS = ("rand", "static", "non-static", "multichannel")  # Kim (2014), section 3.2
OPTIMIZERS = ("adadelta", "adam")
AMP_MODES = ("auto", "bf16", "off")  # auto: bf16 mixed precision on CUDA, fp32 on the CPU
