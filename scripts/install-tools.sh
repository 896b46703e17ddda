#!/usr/bin/env bash
# Installs the pinned Go-built development tools into <repo>/.tools/bin:
#   - the Temporal CLI (its `server start-dev` is the local Temporal server), and
#   - stripe-mock (Stripe's own mock API server, for the Stripe gateway tests).
# Idempotent: a tool is built only when its binary is missing or was built from another version.
# Used by .ci/run and `npm run tools:install`. Needs Go and access to the Go module proxy.
set -euo pipefail

# Temporal CLI v1.5.1 bundles Temporal Server 1.29.1; every later tag has a `replace` directive in its
# go.mod, which makes `go install module@version` refuse it. Keep in sync with dev/temporal-cli.ts.
TEMPORAL_CLI_PACKAGE=github.com/temporalio/cli/cmd/temporal
TEMPORAL_CLI_MODULE=github.com/temporalio/cli
TEMPORAL_CLI_VERSION=v1.5.1
STRIPE_MOCK_PACKAGE=github.com/stripe/stripe-mock
STRIPE_MOCK_MODULE=github.com/stripe/stripe-mock
STRIPE_MOCK_VERSION=v0.197.0
# A cold build of the Temporal CLI compiles the whole server; bound it rather than hang CI forever.
GO_INSTALL_TIMEOUT=30m

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="$repo_dir/.tools/bin"

if ! command -v go >/dev/null 2>&1; then
  echo "install-tools: Go is not installed (no 'go' on PATH)." >&2
  echo "install-tools: install Go 1.25 or later (the Temporal CLI v1.5.1 needs it) from https://go.dev/dl/ and run this again." >&2
  exit 1
fi

# `go install` leaves the tools' own --version at a placeholder (the CLI says 0.0.0-DEV), but the binary's
# build info records the module version, which `go version -m` prints as: mod <module> <version> <sum>.
built_version() {
  local binary=$1 module=$2
  go version -m "$binary" 2>/dev/null | awk -v module="$module" '$1 == "mod" && $2 == module { print $3; exit }'
}

install_tool() {
  local name=$1 package=$2 module=$3 version=$4 note=$5
  local binary="$bin_dir/$name" current
  if [[ -x "$binary" ]]; then
    current="$(built_version "$binary" "$module")"
    if [[ "$current" == "$version" ]]; then
      echo "install-tools: $name $version already installed at $binary"
      return
    fi
    echo "install-tools: $binary is ${current:-of unknown version}, want $version; rebuilding"
  fi
  echo "install-tools: building $name $version with go install${note}"
  local started=$SECONDS
  mkdir -p "$bin_dir"
  GOBIN="$bin_dir" timeout "$GO_INSTALL_TIMEOUT" go install "$package@$version"
  current="$(built_version "$binary" "$module")"
  if [[ "$current" != "$version" ]]; then
    echo "install-tools: $binary reports version '${current}' after go install, expected $version" >&2
    exit 1
  fi
  echo "install-tools: installed $name $version at $binary in $((SECONDS - started))s"
}

echo "install-tools: $(go version); tools go to $bin_dir"
install_tool temporal "$TEMPORAL_CLI_PACKAGE" "$TEMPORAL_CLI_MODULE" "$TEMPORAL_CLI_VERSION" \
  "; this takes a few minutes the first time (the Go build cache keeps it afterwards)"
install_tool stripe-mock "$STRIPE_MOCK_PACKAGE" "$STRIPE_MOCK_MODULE" "$STRIPE_MOCK_VERSION" ""
