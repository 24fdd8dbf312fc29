"""The official `openai` Python SDK (from PyPI) against a running `tessera serve`.

    python openai_sdk.py http://127.0.0.1:PORT API_KEY

Run by crates/tessera-cli/tests/serve.rs. Exits non-zero with the reason on failure.
"""
import sys
import warnings

import openai

warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks the Sora API deprecated

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
tiny = {"steps": 2, "seed": 3}  # tessera extras: a fast job on a CPU

# create, then retrieve until it completes (the SDK's own poll helper)
video = client.videos.create(prompt="a red ball bounces on a wooden floor", seconds="1", size="64x64", extra_body=tiny)
assert video.object == "video" and video.status in ("queued", "in_progress"), video
assert video.seconds == "1" and video.size == "64x64", video
done = client.videos.poll(video.id, poll_interval_ms=200)
assert done.status == "completed", done
assert done.progress == 100 and done.completed_at and done.expires_at, done
got = client.videos.retrieve(video.id)
assert got.id == video.id and got.status == "completed", got

# download_content: the MP4 and the previews
mp4 = client.videos.download_content(video.id).read()
assert mp4[4:8] == b"ftyp", mp4[:16]
thumb = client.videos.download_content(video.id, variant="thumbnail").read()
assert thumb.startswith(b"\x89PNG"), thumb[:8]
sheet = client.videos.download_content(video.id, variant="spritesheet").read()
assert sheet.startswith(b"\x89PNG"), sheet[:8]

# remix
remix = client.videos.remix(video.id, prompt="a blue ball bounces on a wooden floor", extra_body=tiny)
assert remix.remixed_from_video_id == video.id, remix
remix = client.videos.poll(remix.id, poll_interval_ms=200)
assert remix.status == "completed", remix

# extend, uploading the video (multipart). openai 3.57's extend() cannot send the
# {"id": ...} reference form: its file extraction expects a file at `video` and raises
# client-side; the server takes that form too (tests/api.rs sends it as JSON).
ext = client.videos.extend(prompt="the ball rolls away", seconds="1", video=("clip.mp4", mp4, "video/mp4"), extra_body=tiny)
assert ext.seconds.startswith("2"), ext  # 13 frames at 12 fps, then 1 s more
ext = client.videos.poll(ext.id, poll_interval_ms=200)
assert ext.status == "completed", ext

# list, with pages
ids = [v.id for v in client.videos.list(limit=2, order="asc")]  # the iterator follows `after`
assert ids == [video.id, remix.id, ext.id], ids
page = client.videos.list(limit=1)
assert page.data[0].id == ext.id and page.has_more, page

# errors arrive as the SDK's typed exceptions, with the server's message
try:
    client.videos.create(prompt="a red ball", size="65x64")
    raise SystemExit("a bad size was accepted")
except openai.BadRequestError as e:
    assert "65x64" in str(e), e
try:
    openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0).videos.list()
    raise SystemExit("a wrong key was accepted")
except openai.AuthenticationError:
    pass

# delete
deleted = client.videos.delete(video.id)
assert deleted.deleted and deleted.id == video.id, deleted
try:
    client.videos.retrieve(video.id)
    raise SystemExit("a deleted video is still there")
except openai.NotFoundError:
    pass
print(f"PASS openai {openai.__version__}: create, poll, retrieve, download_content x3, remix, extend, list, errors, delete")
