# Field extraction from the test producer's JSON values, shared by the
# manifest converters (manifest2csv.awk, manifest2envelope.awk).  The values
# are flat apart from "customer":{"id":N} and contain no escapes, so a regex
# per key is enough.  Manifest columns: partition \t offset \t event_id \t
# status \t key \t value [\t send_us].

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
