# Producer manifest (partition \t offset \t event_id \t status \t key \t value
# [\t send_us]) -> CSV for COPY: event_id,seq,customer_id,amount,note,created_at
# of the committed records, first occurrence per event id.  The producer's
# JSON values are flat and contain no escapes, so a regex per key is enough.
# Usage: awk -F '\t' -f manifest2csv.awk MANIFEST > rows.csv

function jstr(v, k) {
	if (match(v, "\"" k "\":\"[^\"]*\""))
		return substr(v, RSTART + length(k) + 4, RLENGTH - length(k) - 5)
	return ""
}
function jnum(v, k) {
	if (match(v, "\"" k "\":-?[0-9.]+"))
		return substr(v, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
	return ""
}
$4 == "committed" && !seen[$3]++ {
	v = $6
	printf "%s,%s,%s,%s,\"%s\",%s\n", jstr(v, "event_id"), jnum(v, "seq"),
		jnum(v, "customer_id"), jstr(v, "amount"), jstr(v, "note"), jstr(v, "created_at")
}
