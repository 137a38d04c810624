"""Kim (2014)'s four embedding variants (section 3.2), importable without torch so that `textcnn
--help` answers at once: rand (random vectors, trained), static (pretrained, frozen), non-static
(pretrained, tuned) and multichannel (a frozen and a tuned copy, each filter applied to both)."""

VARIANTS = ("rand", "static", "non-static", "multichannel")
