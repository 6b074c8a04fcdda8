"""Code that runs inside the method images (one method per image).

Only ``protocol`` and ``params`` are standard-library-only and may be imported
by the host orchestrator; everything else needs the image's dependencies.
"""
