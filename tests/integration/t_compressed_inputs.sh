# t_compressed_inputs.sh: one archive as plain VMA, zstd, gzip and lzop reads
# the same (detected by content, not name); broken compressed streams are exit 3.
. "$T_SRCDIR/lib.sh"

# make_forms: a.vma and its .zst/.gz/.lzo forms made by the external tools.
make_forms() {
	mkdir src
	rand src/d1 300000
	put src/d1 100000 65536 /dev/zero
	rand src/d2 4097
	printf 'memory: 64\n' >src/qemu-server.conf
	run vb backup --drive drive-scsi0=src/d1 --drive drive-scsi1=src/d2 \
		--config src/qemu-server.conf --compress none -o a.vma --quiet
	expect_rc 0
	zstd -q -c a.vma >a.vma.zst
	gzip -c a.vma >a.vma.gz
	command -v lzop >/dev/null 2>&1 || skip "lzop is not installed"
	lzop -c a.vma >a.vma.lzo
}

# check_form FILE COMPRESSION: list, verify, config and extract all agree with a.vma.
check_form() {
	local f=$1 comp=$2 x
	run vb list a.vma
	cp "$OUT" list.plain
	run vb list "$f"
	expect_rc 0
	same list.plain "$OUT"
	run vb list --json "$f"
	expect_rc 0
	python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["compression"] == sys.argv[2]' \
		"$OUT" "$comp" || fail "list --json $f: compression is not $comp"
	run vb verify "$f"
	expect_rc 0
	# the exact line is checked in t_list_config_verify
	expect_out "^$f: OK \\(.*2 drives, 6 clusters"
	run vb config "$f"
	expect_rc 0
	same src/qemu-server.conf "$OUT"
	x=x.$comp.$RANDOM
	run vb extract "$f" "$x"
	expect_rc 0
	same src/d1 "$x/disk-drive-scsi0.raw"
	same src/d2 "$x/disk-drive-scsi1.raw"
	same src/qemu-server.conf "$x/qemu-server.conf"
	# and from standard input
	runin "$f" vb extract - "$x.stdin"
	expect_rc 0
	same src/d1 "$x.stdin/disk-drive-scsi0.raw"
	same src/d2 "$x.stdin/disk-drive-scsi1.raw"
}

plain() { make_forms; check_form a.vma none; }
zstd_form() { make_forms; check_form a.vma.zst zstd; }
gzip_form() { make_forms; check_form a.vma.gz gzip; }
lzop_form() { make_forms; check_form a.vma.lzo lzo; }

# The name says nothing: a zstd stream called .vma, a plain one called .gz.
by_content() {
	make_forms
	cp a.vma.zst zst-named.vma
	check_form zst-named.vma zstd
	cp a.vma plain-named.vma.gz
	check_form plain-named.vma.gz none
	cp a.vma.gz gz-named.vma.zst
	check_form gz-named.vma.zst gzip
}

# Several zstd frames one after the other are one stream (as `zstd` concatenates).
zstd_multiframe() {
	make_forms
	local half
	half=$(($(stat -c %s a.vma) / 2))
	head -c "$half" a.vma | zstd -q -c >multi.zst
	tail -c +$((half + 1)) a.vma | zstd -q -c >>multi.zst
	check_form multi.zst zstd
}

# truncated_form FILE CMD: cut in the middle: exit 3, nothing extracted.
truncated_form() {
	local f=$1 cut=$2
	head -c "$(($(stat -c %s "$f") / 2))" "$f" >"$cut"
	run vb verify "$cut"
	expect_fail 3 verify 'truncat|unexpected end|short|incomplete|premature|corrupt'
	run vb extract "$cut" x
	expect_fail 3 extract 'truncat|unexpected end|short|incomplete|premature|corrupt'
	absent x
	runin "$cut" vb verify -
	expect_rc 3
}

truncated_zst() { make_forms; truncated_form a.vma.zst cut.vma.zst; }
truncated_gz() { make_forms; truncated_form a.vma.gz cut.vma.gz; }
truncated_lzo() { make_forms; truncated_form a.vma.lzo cut.vma.lzo; }

# zstd checksum: one flipped byte inside the compressed data.
corrupt_zst() {
	make_forms
	cp a.vma.zst bad.zst
	flip bad.zst $(($(stat -c %s bad.zst) / 2))
	run vb verify bad.zst
	expect_fail 3 verify 'checksum|corrupt|zstd|decompress'
	run vb extract bad.zst x
	expect_rc 3
	absent x
}

# Random bytes, with or without the zstd magic in front.
random_zst() {
	rand r.zst 100000
	run vb list r.zst
	expect_fail 3 list 'not a vma|magic|unknown|not an archive|compress|format'
	printf '\050\265\057\375' >m.zst
	rand tail 100000
	cat tail >>m.zst
	run vb list m.zst
	expect_fail 3 list 'zstd|corrupt|decompress|frame|not a vma|magic'
	run vb verify m.zst
	expect_rc 3
	run vb extract m.zst x
	expect_rc 3
	absent x
}

# A compression we do not read (xz, bzip2): exit 3, not a crash.
unknown_compression() {
	rand d 5000
	run vb backup --drive d=d -o a.vma --quiet
	expect_rc 0
	if command -v xz >/dev/null 2>&1; then
		xz -c a.vma >a.vma.xz
		run vb list a.vma.xz
		expect_fail 3 list 'not a vma|unknown|compress|format|magic'
	elif command -v bzip2 >/dev/null 2>&1; then
		bzip2 -c a.vma >a.vma.bz2
		run vb list a.vma.bz2
		expect_fail 3 list 'not a vma|unknown|compress|format|magic'
	else
		skip "neither xz nor bzip2 is installed"
	fi
}

# zstd --long=N from a pipe (no content size: the frame keeps its 2^N
# window): up to 2^27 (libzstd's default limit; every level and --long
# write at most that) it reads like any other form. Above it a frame is
# refused by name, the window it asks for in the message: a hostile archive
# could ask for 2 GiB per archive of a chain. Read through zstd -d instead.
zstd_long_window() {
	make_forms
	zstd -q --long=27 -c <a.vma >long27.vma.zst
	check_form long27.vma.zst zstd
	runin long27.vma.zst vb verify -
	expect_rc 0
	zstd -q --long=31 -c <a.vma >long31.vma.zst
	zstd -lv long31.vma.zst 2>&1 | grep -q 'Window Size: 2.00 GiB' ||
		skip "zstd --long=31 did not write a 2 GiB window"
	run vb verify long31.vma.zst
	expect_fail 3 verify "long31\\.vma\\.zst: the zstd stream asks for a window of 2 GiB, more than the limit of 128 MiB \\(2\\^27 bytes.*zstd -d --long=31"
	run vb extract long31.vma.zst x
	expect_fail 3 extract 'window of 2 GiB'
	absent x
	runin long31.vma.zst vb list -
	expect_fail 3 list 'standard input: the zstd stream asks for a window of 2 GiB'
	# what the message says to do
	zstd -q -d --long=31 -c long31.vma.zst >plain.vma || fail "zstd -d --long=31"
	runin plain.vma vb verify -
	expect_rc 0
	# a crafted frame header: magic, descriptor, window byte (exponent + 10 = log)
	cp long27.vma.zst huge.vma.zst
	[ "$(od -An -tx1 -j 5 -N 1 huge.vma.zst | tr -d ' ')" = 88 ] || fail "unexpected window byte"
	printf '\260' | dd of=huge.vma.zst bs=1 seek=5 conv=notrunc status=none
	run vb verify huge.vma.zst
	expect_fail 3 verify "huge\\.vma\\.zst: the zstd stream asks for a window of 4 GiB"
}

tcase plain plain
tcase zstd zstd_form
tcase gzip gzip_form
tcase lzop lzop_form
tcase by_content by_content
tcase zstd_multiframe zstd_multiframe
tcase truncated_zst truncated_zst
tcase truncated_gz truncated_gz
tcase truncated_lzo truncated_lzo
tcase corrupt_zst corrupt_zst
tcase random_zst random_zst
tcase unknown_compression unknown_compression
tcase zstd_long_window zstd_long_window
