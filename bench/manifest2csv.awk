# Producer manifest -> CSV for COPY: event_id,seq,customer_id,amount,note,created_at
# of the committed records, first occurrence per event id.
# Usage: awk -F '\t' -f json_fields.awk -f manifest2csv.awk MANIFEST > rows.csv

$4 == "committed" && !seen[$3]++ {
	v = $6
	printf "%s,%s,%s,%s,\"%s\",%s\n", jstr(v, "event_id"), jnum(v, "seq"),
		jnum(v, "customer_id"), jstr(v, "amount"), jstr(v, "note"), jstr(v, "created_at")
}
