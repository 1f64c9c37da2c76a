"""What a study trains on, checked before it starts: data sets (``datasets``: the data.yaml checks;
``report``: the report against YOLOv5's training guide; ``sample``: the synthetic sample set) and
the operator's pretrained weights (``weights``)."""
