# Sourced by the scripts that build Debian packages' upstream sources.
#
#   install_missing PACKAGE...
#
# Installs (apt-get, no recommends) those of the packages that are not
# installed, saying which on stderr; needs root when something is missing.
install_missing() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

#   fetch_trixie_source PACKAGE DIR
#
# Downloads PACKAGE's source from Debian trixie into DIR/dl through a
# private apt state in DIR/apt holding only trixie's source index (the
# system's apt sources stay as they are), and prints the path of the
# upstream tarball (PACKAGE_VERSION.orig.tar.*). Only that tarball is
# needed, so a refused .dsc is not fatal.
fetch_trixie_source() {
    local package=$1 dir=$2
    mkdir -p "$dir/apt/lists/partial" "$dir/apt/parts" "$dir/dl"
    cat >"$dir/apt/parts/trixie-src.sources" <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    local apt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir/apt/parts"
        -o "Dir::State::Lists=$dir/apt/lists" -o APT::Sandbox::User=root)
    apt-get "${apt[@]}" -q update >/dev/null
    (cd "$dir/dl" && apt-get "${apt[@]}" -q source --download-only "$package" >/dev/null 2>&1) || true
    local tarball
    for tarball in "$dir"/dl/"$package"_*.orig.tar.*; do
        [ -f "$tarball" ] && { echo "$tarball"; return 0; }
    done
    echo "fetch_trixie_source: no $package orig tarball was downloaded" >&2
    return 1
}
