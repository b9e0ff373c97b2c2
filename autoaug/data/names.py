"""Names that the layers above validate against without loading the data code (the CLI's help shows them)."""

DEFAULT_DATASET = "fashion_mnist_small"  # what a command uses when no dataset is named
GENERATORS = ("vae", "dcgan")  # the synthetic-image generators (autoaug.data.synthetic)
