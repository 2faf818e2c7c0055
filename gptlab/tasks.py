"""Task data for the application lessons, in one place: loaders and prompt formats.

Each application lesson (11 sentiment, 12 translation, 13 summarization) reads its
examples from here, so a split or a prompt format is defined once and the tests
check it once. Datasets come through `gptlab.data.fetch` (cache, mirror, sha256).
"""

from __future__ import annotations


# --- SST-2 sentiment (lesson 11) -------------------------------------------------



# --- Tatoeba English -> Chinese translation (lesson 12) --------------------------



# --- SciTLDR summarization (lesson 13) -------------------------------------------
