"""Weight space: permutation symmetry between two networks of one architecture.

- :mod:`~analysis.weights.specs`: which parameter axes share a permutation of hidden units
  (a :class:`~analysis.weights.specs.PermutationSpec`), declared for the built-in
  architectures (``mlp``, ``small-cnn``, ``transformer``; each attention head's coordinates
  by a permutation of its own), and applying permutations to a state dict;
- :mod:`~analysis.weights.bert`: the same structure for Hugging Face BERT, RoBERTa and
  DistilBERT state dicts, read through reshaped views that give their attention heads an axis
  of their own;
- :mod:`~analysis.weights.matching`: weight matching (Ainsworth et al. 2023, "Git Re-Basin",
  algorithm 2) and the L2 distance it reduces;
- :mod:`~analysis.weights.connectivity`: loss and accuracy along the linear path between two
  state dicts and the barrier on it (linear mode connectivity);
- :mod:`~analysis.weights.spectra`: singular values of each layer's weight matrix in both
  networks and how well their singular vectors align;
- :mod:`~analysis.weights.chance`: what unrelated weights score on that alignment (without
  torch);
- :mod:`~analysis.weights.unrelated`: what they score after the same weight matching, drawn
  (pairs of networks of the same shapes and spectra, uniformly randomly oriented).
"""
