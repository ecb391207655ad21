"""Data: labelled image records (`images`, a leaf every layer may use), the data set loaders, client
partitions and the federation built from one seed (lab side only: attacks never import these loaders)."""
