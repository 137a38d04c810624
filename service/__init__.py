"""HTTP prediction service for textcnn bundles, on LitServe: `textcnn serve` or `python -m service`.

Built on the library, never the other way round: `textcnn` does not import `service`; the
`serve` command plugs into the `textcnn` CLI through the `textcnn.commands` entry point.
"""
