"""Datasets: one internal representation for YOLO, COCO and Pascal VOC, plus the synthetic set.

Nothing here imports TensorFlow or Keras.
"""
