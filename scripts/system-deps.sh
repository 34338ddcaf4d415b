#!/usr/bin/env bash
# The report's PDF comes from nbconvert --to pdf, which needs xelatex and pandoc; the report
# test reads the PDF with pdftotext. Install them from Debian's packages when missing.
set -euo pipefail
need=()
command -v xelatex >/dev/null || need+=(texlive-xetex texlive-fonts-recommended texlive-plain-generic)
command -v pandoc >/dev/null || need+=(pandoc)
command -v pdftotext >/dev/null || need+=(poppler-utils)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "error: missing ${need[*]}: install them with 'sudo apt-get install -y ${need[*]}' (needed for the PDF report)" >&2
  exit 2
fi
echo "installing ${need[*]} (Debian packages, about a minute)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
