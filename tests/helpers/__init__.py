"""Test helpers: synthetic stand-ins for licensed or large files (SMPL model, official results)."""
