"""The detection pipeline: probe, decode, windows, inference, shots, post-processing, cues, previews, clips."""
