#!/bin/sh
# One-shot: registers Vigil's search attributes (all Keyword) in the Temporal namespace.
# Safe to run again: an attribute that is already there is left alone.
set -eu
ns=${TEMPORAL_NAMESPACE:-default}
for sa in VigilAction VigilCustomer VigilStatus VigilRequester; do
	if temporal operator search-attribute list --namespace "$ns" | grep -qw "$sa"; then
		echo "search attribute $sa: already registered"
		continue
	fi
	temporal operator search-attribute create --namespace "$ns" --name "$sa" --type Keyword
	echo "search attribute $sa: registered"
done
