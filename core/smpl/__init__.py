"""SMPL body model on torch (`core.smpl.body_model`). The numpy file reader is trace_format.smpl_file."""
