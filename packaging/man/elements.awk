# elements.tsv (file, path, kind, name, default, values, vhost_override, chapter,
# since, description) -> the ELEMENTS section of kura.conf(5), in roff.
function roff(s) {
    gsub(/\\/, "\\e", s)
    gsub(/-/, "\\-", s)
    if (s ~ /^[.']/) s = "\\&" s
    return s
}
BEGIN { FS = "\t" }
NR == 1 { next }
$1 != file { file = $1; printf ".SS %s\n", file }
{
    name = ($3 == "attribute") ? $2 "@" $4 : $2
    printf ".TP\n\\fB%s\\fR\n", roff(name)
    line = $6
    if ($5 != "") line = line "; default " $5
    if ($7 == "yes") line = line "; per vhost"
    printf "%s.\n", roff(line)
    if ($10 != "") printf ".br\n%s\n", roff($10)
}
