#!/usr/bin/env bash
# Checks the shipped alert rules: they load in Prometheus (`promtool check rules`), their
# unit tests pass (`promtool test rules`), and the PrometheusRule carries exactly the
# groups of the plain rules file. promtool comes with Debian's `prometheus` package.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=examples/alerts

promtool check rules "$dir/rules.yaml"
promtool test rules "$dir/rules.test.yaml"

# The groups as the PrometheusRule holds them: everything under `spec:`, indented by two.
if ! diff -u <(sed -n '/^groups:/,$p' "$dir/rules.yaml") \
             <(sed -n '/^spec:/,$p' "$dir/prometheusrule.yaml" | tail -n +2 | sed 's/^  //'); then
  echo "$dir/prometheusrule.yaml and $dir/rules.yaml hold different rules: make spec.groups of the one equal the groups of the other." >&2
  exit 1
fi
echo "alert rules: promtool check and tests pass; PrometheusRule matches rules.yaml"
