"""`textcnn tune`: a search over pooling, widths, maps, dropout, variant and rate on Ray Tune.

- `space`: the search space, its defaults and `--space` files (no torch, no ray);
- `trial`: one trial's training, reporting its dev accuracy after every epoch (runs on a worker);
- `search`: the two stages on Ray Tune (single widths, then combinations around the best), resume,
  selection on dev, and `trials.jsonl`;
- `report`: `REPORT.md` and its plot.

Selection never sees a test set: trials train on the tuning fold's training part and are compared
on its dev part, and the test part is taken out of the data before any trial starts.
"""
