#!/usr/bin/env bash
# Runs every test of liverelay. Installs the real programs the tests use
# (Debian's nginx with the RTMP module, ffmpeg/ffprobe) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package starts a system nginx on port 80; the tests run their own.
  $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
  $sudo systemctl disable --now postgresql >/dev/null 2>&1 || true
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted"
  exit 1
fi
echo "== go vet"
go vet ./...
echo "== unit tests (race detector)"
go test -race -count=1 -timeout 10m $(go list ./... | grep -v /e2e)
echo "== allocation tests (without the race detector, which changes allocation)"
go test -count=1 -run 'Allocations' ./internal/...
echo "== end-to-end tests"
go test -count=1 -timeout 20m ./e2e/
echo "== official SDK against the binary (module sdktest)"
(cd sdktest && go vet ./... && go test -count=1 -timeout 10m ./...)
