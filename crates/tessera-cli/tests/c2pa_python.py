"""Validates tessera's C2PA manifests with c2pa-python, the Content Authenticity
Initiative's Python reader (PyPI `c2pa-python`, its own prebuilt c2pa-rs), independent of
the c2pa crate tessera signs with. Run by tests/c2pa.rs:

    python c2pa_python.py CA.pem FILE...

For each file it reads the manifest twice: with the SDK's default trust settings (no
trust anchors: our local CA is on no official list, so `signingCredential.untrusted` is
expected and is the only failure allowed), and with CA.pem as a user trust anchor
(then the state must be Trusted with no failure). It checks the signature and hash
codes, the c2pa.created action and tessera's generation assertion, prints one JSON line
per file with what it found, and exits 1 on the first check that fails.
"""

import json
import sys

import c2pa

MIME = {"mp4": "video/mp4", "png": "image/png", "gif": "image/gif"}
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# Codes that say the signature and the content binding hold (C2PA 2.1, 15.2).
SIGNATURE_OK = "claimSignature.validated"
HASH_OK = {"assertion.dataHash.match", "assertion.bmffHash.match"}


def read(path, context=None):
    mime = MIME[path.rsplit(".", 1)[-1].lower()]
    with open(path, "rb") as f:
        reader = c2pa.Reader(mime, f, None, context) if context else c2pa.Reader(mime, f)
        store = json.loads(reader.json())
        state = reader.get_validation_state()
    return store, state


def codes(store, kind):
    active = (store.get("validation_results") or {}).get("activeManifest") or {}
    return sorted({c["code"] for c in active.get(kind, [])})


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    ca_pem = open(sys.argv[1]).read()
    trusted_ctx = c2pa.Context(c2pa.Settings.from_dict({"trust": {"user_anchors": ca_pem}, "verify": {"verify_trust": True}}))
    for path in sys.argv[2:]:
        store, state = read(path)
        manifest = store["manifests"][store["active_manifest"]]
        failures, successes = codes(store, "failure"), codes(store, "success")
        _, trusted_state = read(path, trusted_ctx)
        actions = [a for x in manifest["assertions"] if x["label"].startswith("c2pa.actions") for a in x["data"]["actions"]]
        generation = next((x["data"] for x in manifest["assertions"] if x["label"] == "org.tessera.generation"), None)
        print(json.dumps({
            "file": path,
            "sdk": c2pa.sdk_version(),
            "state": str(state),
            "failure": failures,
            "success": successes,
            "informational": codes(store, "informational"),
            "state_with_local_ca": str(trusted_state),
            "generator": manifest.get("claim_generator_info"),
            "actions": [(a["action"], a.get("digitalSourceType")) for a in actions],
            "generation": generation,
        }))
        check(SIGNATURE_OK in successes, f"{path}: no {SIGNATURE_OK}")
        check(HASH_OK & set(successes), f"{path}: no hash match code in {successes}")
        check(set(failures) <= {"signingCredential.untrusted"}, f"{path}: failures {failures}")
        check("Trusted" in str(trusted_state), f"{path}: with the local CA as anchor the state is {trusted_state}")
        check(("c2pa.created", TRAINED) in [(a, s) for a, s in [(a["action"], a.get("digitalSourceType")) for a in actions]], f"{path}: no c2pa.created trainedAlgorithmicMedia action")
        check(generation and generation.get("prompt_sha256"), f"{path}: no tessera generation assertion")


if __name__ == "__main__":
    main()
