"""Detection after restoration (YOLO mAP); see ``docs/detection.md``.

``metric`` (the dataset-level metric and ``detection_metric_spec``), ``data`` (YOLO data, class
maps, converters), ``yolo_env`` (offline-safe ultralytics), ``report`` (table, chart, boxes),
``cli`` (``bench detect``), ``toy_detector`` (the untrained stand-in of the tests). May import
``harness`` and ultralytics, never ``tasks`` or a restorer module (those come through the
registries). Importing this package imports nothing heavy.
"""
