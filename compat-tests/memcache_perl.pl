#!/usr/bin/perl
# Cache::Memcached (Debian's libcache-memcached-perl) against HOST:PORT:
# set/get of a string and a Perl structure (flags say "frozen"), get_multi,
# add/replace, incr/decr, delete. Exits non-zero on the first mismatch.
use strict;
use warnings;
use Cache::Memcached;

my ($host, $port) = @ARGV;
my $mc = Cache::Memcached->new({ servers => ["$host:$port"], compress_threshold => 1_000_000 });
my $fails = 0;
sub check { my ($ok, $what) = @_; print(($ok ? "ok" : "not ok"), " - $what\n"); $fails++ unless $ok; }

$mc->flush_all;
check($mc->set("perl:str", "hello"), "set a string");
check(($mc->get("perl:str") // "") eq "hello", "get it back");
check($mc->set("perl:ref", { list => [1, 2, 3], name => "x" }), "set a structure");
my $ref = $mc->get("perl:ref");
check(ref $ref eq "HASH" && $ref->{name} eq "x" && @{ $ref->{list} } == 3, "structure thawed (flags kept)");
my $multi = $mc->get_multi("perl:str", "perl:ref", "perl:none");
check(keys %$multi == 2 && $multi->{"perl:str"} eq "hello", "get_multi");
check(!$mc->add("perl:str", "again"), "add on a present key fails");
check($mc->replace("perl:str", "replaced"), "replace");
check($mc->get("perl:str") eq "replaced", "replaced value");
check($mc->set("perl:n", 5), "set a number");
check($mc->incr("perl:n", 10) == 15, "incr");
check($mc->decr("perl:n", 3) == 12, "decr");
check($mc->delete("perl:str"), "delete");
check(!defined $mc->get("perl:str"), "deleted key is gone");
exit($fails ? 1 : 0);
