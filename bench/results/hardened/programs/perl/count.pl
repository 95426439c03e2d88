
use strict; use warnings;
my (%count, %bigram, @lines);
while (my $line = <STDIN>) {
    chomp $line;
    push @lines, $line;
    my @w = split / /, $line;
    for my $i (0 .. $#w) {
        $count{$w[$i]}++;
        $bigram{"$w[$i-1] $w[$i]"}++ if $i > 0;
    }
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
my $joined = join(",", map { lc(uc($_)) . ":" . $count{$_} } @top);
my $maxb = 0;
for my $v (values %bigram) { $maxb = $v if $v > $maxb; }
my $rev = 0;
for my $l (@lines) { $rev += length(scalar reverse $l); }
print "$joined\n", scalar(keys %count), " ", scalar(keys %bigram), " $maxb $rev\n";
