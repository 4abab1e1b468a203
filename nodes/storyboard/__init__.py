"""The storyboard: where remote scene images and local media become the finished video.

It owns the frame plan (``timeline_plan``), the renderer (``timeline``), the VIDEO value ComfyUI's own
video nodes accept (``video``, ``comfy_video``, ``video_encoding``) and the two nodes, Storyboard
Timeline and Storyboard Video. The rest of the pack knows nothing of it; it uses the pack's errors, its
ComfyUI adapter and its value types.
"""
