"""Multi-object tracking over the perception network's detections (docs/tracking.md): ``ground`` (boxes to
points on flat ground through the camera model), ``tracker`` (ByteTrack-style association, constant-velocity
Kalman filters in the image and on the ground), ``ttc`` (time to collision along the planned path) and
``evaluate`` (HOTA, MOTA, IDF1 with TrackEval; distance and speed errors against the simulator's truth)."""
