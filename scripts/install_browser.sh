#!/usr/bin/env bash
# Install Debian's Chromium for the browser test (tests/test_browser.py) when it is missing.
# Playwright's own browser download is never used (it fails on machines without internet):
# the test drives /usr/bin/chromium. Where apt-get is not allowed (no apt-get, or neither root
# nor passwordless sudo), this prints a note and the browser test skips, saying why.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no apt-get here: Debian chromium not installed, the browser test will skip" >&2
  exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "note: apt-get not allowed (not root, no passwordless sudo): the browser test will skip" >&2
    exit 0
  fi
fi
echo "installing Debian chromium for the browser test (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq \
  && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null \
  || { echo "error: apt-get could not install chromium" >&2; exit 1; }
