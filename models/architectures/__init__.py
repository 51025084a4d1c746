"""The architecture zoo: the networks a checkpoint loads into, and the catalog that lists them."""
