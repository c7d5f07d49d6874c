"""Loading interaction data sets (user sequences) and splitting them for evaluation."""
from models.data.sequences import Dataset, load_attributes, load_sequences, split_leave_one_out

__all__ = ["Dataset", "load_attributes", "load_sequences", "split_leave_one_out"]
