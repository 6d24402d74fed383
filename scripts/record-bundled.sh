#!/usr/bin/env bash
# Regenerate recordings/ from the offline fake provider (no network, no keys).
set -euo pipefail
cd "$(dirname "$0")/.."
src=scripts/bundled-recordings
notes="recorded from streambench fake-provider (offline, scripted: $src/script.yaml)"
url_file=$(mktemp)
streambench fake-provider --script "$src/script.yaml" --rate 150 --ttfb 120 >"$url_file" &
server=$!
trap 'kill "$server"; rm -f "$url_file"' EXIT
until [ -s "$url_file" ]; do sleep 0.1; done
url=$(head -n1 "$url_file")

rec() { streambench record --base-url "$url" --notes "$notes" "$@"; }
rec --provider anthropic --prompt "How do I cross the street?" -o recordings/anthropic-chat.yaml
rec --provider anthropic --request "$src/job_code.yaml" --matrix "$src/matrix.yaml" -o recordings/tmp-matrix
mv recordings/tmp-matrix/job-code-changes-first.yaml recordings/anthropic-job-code-changes-first.yaml
mv recordings/tmp-matrix/job-code-text-first.yaml recordings/anthropic-job-code-text-first.yaml
rmdir recordings/tmp-matrix
rec --provider anthropic --request "$src/workflow.yaml" -o recordings/anthropic-workflow.yaml
rec --provider openai-chat --prompt "How do I cross the street?" -o recordings/openai-chat.yaml
rec --provider openai-responses --prompt "How do I cross the street?" -o recordings/openai-responses.yaml
