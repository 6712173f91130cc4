#!/usr/bin/perl
# bench/cs_gen.pl CHANGES KEYS PARTITIONS DIR [snapshot]: a Debezium-shaped change
# stream for bench/run.sh --change-stream, as Kafka Connect's JsonConverter
# with schemas writes it (every key and value {"schema": ..., "payload": ...},
# as the Debezium JDBC sink requires), from a model of a source table
# items (id int PRIMARY KEY, qty int, name text, price numeric(10,2),
# updated_at timestamptz).
#
# Each change: 20 % a create of an absent key, 70 % an update and 10 % a
# delete of a present key (a create while none is present), keys drawn from
# KEYS; a delete is followed by its tombstone, as Debezium sends it.
# Writes DIR/part.P (one "key<TAB>value" line per record in partition P, in
# order; an empty value is a tombstone: kcat -Z), DIR/expected.csv (the
# final state, for COPY) and prints "changes C records R creates N updates U
# deletes D rows F".  With "snapshot": instead, an initial snapshot, one read
# (op r) of each of the KEYS keys, in key order.

use strict;
use warnings;

my ($n, $nkeys, $nparts, $dir, $snapshot) = @ARGV;
die "usage: cs_gen.pl CHANGES KEYS PARTITIONS DIR\n" unless defined $dir;
srand(13);

my $row = '{"type":"struct","optional":true,"name":"cs.public.items.Value","fields":['
  . '{"field":"id","type":"int32","optional":false},'
  . '{"field":"qty","type":"int32","optional":true},'
  . '{"field":"name","type":"string","optional":true},'
  . '{"field":"price","type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},'
  . '{"field":"updated_at","type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp"}]}';
(my $before = $row) =~ s/^\{/{"field":"before",/;
(my $after = $row) =~ s/^\{/{"field":"after",/;
my $vschema = '{"type":"struct","optional":false,"name":"cs.public.items.Envelope","fields":['
  . "$before,$after,"
  . '{"field":"source","type":"struct","optional":false,"name":"io.debezium.connector.postgresql.Source","fields":['
  . '{"field":"connector","type":"string","optional":false},{"field":"ts_ms","type":"int64","optional":false},'
  . '{"field":"table","type":"string","optional":true},{"field":"lsn","type":"int64","optional":true}]},'
  . '{"field":"op","type":"string","optional":false},{"field":"ts_ms","type":"int64","optional":true}]}';
my $kschema = '{"type":"struct","optional":false,"name":"cs.public.items.Key","fields":['
  . '{"field":"id","type":"int32","optional":false}]}';

my @fh;
for my $p (0 .. $nparts - 1)
{
	open($fh[$p], '>', "$dir/part.$p") or die "cannot write $dir/part.$p: $!";
}

my %state;						# id => [qty, name, price, updated_at]
my @present;					# ids present, for drawing
my %pos;						# id => index in @present
my ($creates, $updates, $deletes, $records) = (0, 0, 0, 0);
my $ts = 1_700_000_000_000;

sub payload_row
{
	my ($id) = @_;
	my $r = $state{$id};
	return sprintf('{"id":%d,"qty":%d,"name":"%s","price":%s,"updated_at":"%s"}', $id, @$r);
}

$n = $nkeys if $snapshot;
for my $i (1 .. $n)
{
	my $r = rand();
	my ($id, $op);
	if ($snapshot)
	{
		($id, $op) = ($i, 'r');
	}
	elsif ($r < 0.2 || !@present)
	{
		do { $id = 1 + int(rand($nkeys)) } while exists $state{$id} && @present < $nkeys;
		next if exists $state{$id};
		$op = 'c';
	}
	else
	{
		$id = $present[ int(rand(@present)) ];
		$op = $r < 0.9 ? 'u' : 'd';
	}
	$ts++;
	my ($b, $a) = ('null', 'null');
	if ($op eq 'd')
	{
		$b = sprintf('{"id":%d,"qty":null,"name":null,"price":null,"updated_at":null}', $id);
		delete $state{$id};
		my $k = delete $pos{$id};
		my $last = pop @present;
		if ($last != $id)
		{
			$present[$k] = $last;
			$pos{$last} = $k;
		}
		$deletes++;
	}
	else
	{
		my @t = gmtime(int($ts / 1000));
		$state{$id} = [ int(rand(1000)), "item $id rev $i", sprintf('%d.%02d', int(rand(100000)), int(rand(100))),
			sprintf('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0], $ts % 1000) ];
		if ($op ne 'u')
		{
			$pos{$id} = scalar @present;
			push @present, $id;
			$creates++;
		}
		else
		{
			$updates++;
		}
		$a = payload_row($id);
	}
	my $key = sprintf('{"schema":%s,"payload":{"id":%d}}', $kschema, $id);
	my $fhp = $fh[ $id % $nparts ];
	printf $fhp "%s\t{\"schema\":%s,\"payload\":{\"before\":%s,\"after\":%s,"
	  . "\"source\":{\"connector\":\"postgresql\",\"ts_ms\":%d,\"table\":\"items\",\"lsn\":%d},"
	  . "\"op\":\"%s\",\"ts_ms\":%d}}\n", $key, $vschema, $b, $a, $ts, 4096 * $i, $op, $ts;
	$records++;
	if ($op eq 'd')
	{
		print $fhp "$key\t\n";
		$records++;
	}
}
close($_) for @fh;

open(my $csv, '>', "$dir/expected.csv") or die "cannot write $dir/expected.csv: $!";
for my $id (sort { $a <=> $b } keys %state)
{
	my $r = $state{$id};
	print $csv join(',', $id, @$r), "\n";
}
close($csv);
printf "changes %d records %d creates %d updates %d deletes %d rows %d\n",
  $creates + $updates + $deletes, $records, $creates, $updates, $deletes, scalar(keys %state);
