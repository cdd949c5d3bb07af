#!/usr/bin/perl
# tests/script/manpages.pl CONFIG_C USAGE_TXT RIVEN_8 RIVEN_YML_5
#
# The drift check of the manual pages (run by test_manpages.sh): every key
# that CONFIG_C accepts must have an entry ".It Ic KEY" in RIVEN_YML_5,
# every word of a value list (distribution_names...) a "Cm WORD" there, and
# every flag of USAGE_TXT (riven -h) an entry ".It ... Fl X" in RIVEN_8.
# The keys are read from the source, comments stripped:
#   - the first string of each command table entry {"name", set_...} and
#     of each rule {"name", CFG_ROUTE_...};
#   - every string of each "static const char *const NAME[] = {...}"
#     array: the arrays in @values hold value words, every other one keys
#     (a new array is a list of keys until it is named here).
# Prints one line per missing item and the counts; exit 0 when nothing is
# missing, 1 when something is, 2 on a usage or parse problem.
use strict;
use warnings;

my @values = qw(distribution_names hash_names bool_names orca_names
                tls_verify_names tls_version_names read_names
                backend_mode_names);

die "usage: $0 CONFIG_C USAGE_TXT RIVEN_8 RIVEN_YML_5\n" unless @ARGV == 4;
my ($config_c, $usage_txt, $page8, $page5) = @ARGV;

sub slurp {
    my ($path) = @_;
    open(my $fh, '<', $path) or die "$0: $path: $!\n";
    local $/;
    my $text = <$fh>;
    close($fh);
    return $text;
}

# ---- what config.c accepts ----
my $src = slurp($config_c);
$src =~ s{/\*.*?\*/}{ }gs;
$src =~ s{//[^\n]*}{}g;
my (%keys, %words);
while ($src =~ /\{\s*"([^"]+)"\s*,\s*(?:set_\w+|CFG_ROUTE_\w+)\b/g) {
    $keys{$1} = 1;
}
my %is_value = map { $_ => 1 } @values;
my %arrays;
while ($src =~ /static\s+const\s+char\s*\*\s*const\s+(\w+)\s*\[[^\]]*\]\s*=\s*\{(.*?)\}\s*;/gs) {
    my ($name, $body) = ($1, $2);
    $arrays{$name} = 1;
    while ($body =~ /"([^"]*)"/g) {
        next if $1 eq '';
        if ($is_value{$name}) { $words{$1} = 1 } else { $keys{$1} = 1 }
    }
}
# a parse that found nothing would pass: these must have been found
for my $k (qw(listen servers connect_ms hash_tag server_name fraction
              default ttl_max routes metrics)) {
    die "$0: $config_c: key '$k' not found: has the source changed form?\n"
        unless $keys{$k};
}
for my $v (@values) {
    die "$0: $config_c: no array $v (rename it in \@values)\n"
        unless $arrays{$v};
}

# ---- what riven -h offers ----
my $usage = slurp($usage_txt);
my (%short, %long);
die "$0: $usage_txt: no flags found\n" unless $usage =~ /^usage: riven /m;
while ($usage =~ /(?:^|[\s\[(|,\/])-([A-Za-z])(?=[\s\],|]|$)/mg) { $short{$1} = 1 }
while ($usage =~ /(?:^|[\s\[(|,\/])--([a-z0-9][a-z0-9-]*)/mg) { $long{$1} = 1 }

# ---- what the pages document ----
# The arguments of macro M on the request lines of a page (only on ".It"
# lines when it_only), "\&" and "\-" unescaped.
sub macro_args {
    my ($text, $m, $it_only) = @_;
    my %found;
    for my $line (split /\n/, $text) {
        next unless $line =~ /^\.(\S+)/;
        next if $it_only && $1 ne 'It';
        my @tok = split ' ', substr($line, 1);
        my $in = 0;
        for my $t (@tok) {
            if ($t =~ /^[A-Z][a-z]{1,2}$/) { $in = $t eq $m; next }
            next unless $in;
            (my $w = $t) =~ s/\\&//g;
            $w =~ s/\\-/-/g;
            $found{$w} = 1;
        }
    }
    return \%found;
}

my $man5 = slurp($page5);
my $man8 = slurp($page8);
my $doc_keys = macro_args($man5, 'Ic', 1);
my $doc_words = macro_args($man5, 'Cm', 0);
my $doc_flags = macro_args($man8, 'Fl', 1);

my $missing = 0;
for my $k (sort keys %keys) {
    next if $doc_keys->{$k};
    print "$page5: config key '$k' ($config_c) is not documented: no '.It Ic $k'\n";
    $missing++;
}
for my $w (sort keys %words) {
    next if $doc_words->{$w};
    print "$page5: value '$w' ($config_c) is not documented: no 'Cm $w'\n";
    $missing++;
}
for my $f (sort keys %short) {
    next if $doc_flags->{$f};
    print "$page8: flag -$f (riven -h) is not documented: no '.It Fl $f'\n";
    $missing++;
}
for my $f (sort keys %long) {
    next if $doc_flags->{"-$f"};
    (my $e = $f) =~ s/-/\\-/g;
    print "$page8: flag --$f (riven -h) is not documented: no '.It Fl \\-$e'\n";
    $missing++;
}
printf "%d keys, %d value words, %d short and %d long flags checked, %d missing\n",
    scalar(keys %keys), scalar(keys %words), scalar(keys %short),
    scalar(keys %long), $missing;
exit($missing ? 1 : 0);
