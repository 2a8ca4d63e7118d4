"""Parity with the ground truth: `metrics` (how two spike files compare), `reports` (the seed's three
comparisons over a bundle, written as files) and `io` (streaming reads of spike parquets)."""
