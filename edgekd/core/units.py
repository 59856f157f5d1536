"""The numbers every layer shares, each with its unit (the frontend's defaults, DESIGN.md section 6).

A bundle's manifest records the frontend it was exported with; these are what edgekd trains and exports by default.
"""

from __future__ import annotations

__all__ = ["SAMPLE_RATE", "CLIP_SAMPLES", "FRAME_SAMPLES", "HOP_SAMPLES", "N_FFT", "N_MELS", "WINDOW_FRAMES", "MS_PER_S"]

MS_PER_S = 1000
SAMPLE_RATE = 16000  # Hz: every waveform edgekd reads, writes or synthesizes is resampled to this
CLIP_SAMPLES = SAMPLE_RATE  # samples in one KWS clip (1 s)
FRAME_SAMPLES = 480  # samples in one analysis frame (30 ms, periodic Hann)
HOP_SAMPLES = 160  # samples between frames (10 ms)
N_FFT = 512  # FFT points (the frame zero-padded)
N_MELS = 40  # mel bands
WINDOW_FRAMES = (CLIP_SAMPLES - FRAME_SAMPLES) // HOP_SAMPLES + 1  # frames in the 1 s model window: 98
