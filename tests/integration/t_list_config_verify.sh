# t_list_config_verify.sh: the output of list (lines and --json), config and
# verify on an archive of ours, and the vmaback.json blob every archive carries.
. "$T_SRCDIR/lib.sh"

# make_archive: a.vma with drives of 1000 and 70000 bytes, two configs.
make_archive() {
	mkdir src
	rand src/d1 1000
	rand src/d2 70000
	printf 'memory: 512\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n' >src/qemu-server.conf
	printf 'a\0binary\377config\n' >src/other.fw
	run vb backup --drive drive-scsi0=src/d1 --drive drive-virtio1=src/d2 \
		--config src/qemu-server.conf --config src/other.fw -o a.vma --quiet
	expect_rc 0
}

list_lines() {
	make_archive
	run env TZ=UTC "$VMABACK" list a.vma
	expect_rc 0
	expect_out '^CFG: size: 53 name: qemu-server\.conf$'
	expect_out '^CFG: size: 16 name: other\.fw$'
	expect_out '^CFG: size: [0-9]+ name: vmaback\.json$'
	expect_out '^DEV: dev_id=1 size: 1024 devname: drive-scsi0$'
	expect_out '^DEV: dev_id=2 size: 70144 devname: drive-virtio1$'
	expect_out '^CTIME: [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}$'
	[ "$(wc -l <"$OUT")" -eq 6 ] || fail "list printed $(wc -l <"$OUT") lines, expected 6"
	# Proxmox's order: every CFG line, then every DEV line, then CTIME.
	[ "$(cut -d: -f1 "$OUT" | uniq | tr '\n' ' ')" = "CFG DEV CTIME " ] ||
		fail "list lines are not in CFG, DEV, CTIME order"
	# CTIME is ctime(3) of the header's ctime, which --json gives as a number.
	cp "$OUT" lines
	run vb list --json a.vma
	expect_rc 0
	local t want
	t=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ctime"])' "$OUT")
	want=$(TZ=UTC date -d "@$t" '+%a %b %e %H:%M:%S %Y')
	grep -qx "CTIME: $want" lines || fail "CTIME line is not '$want'"
	now=$(date +%s)
	[ $((now - t)) -ge 0 ] && [ $((now - t)) -lt 600 ] || fail "ctime $t is not now ($now)"
}

list_json() {
	make_archive
	run vb list --json a.vma
	expect_rc 0
	python3 - "$OUT" <<'EOF' || fail "list --json does not describe the archive"
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d["uuid"], str) and len(d["uuid"].replace("-", "")) == 32, d["uuid"]
assert isinstance(d["ctime"], int)
assert d["compression"] == "none", d["compression"]
cfg = {c["name"]: c["size"] for c in d["configs"]}
assert cfg["qemu-server.conf"] == 53 and cfg["other.fw"] == 16, cfg
assert "vmaback.json" in cfg, cfg
devs = [(x["dev_id"], x["name"], x["size"]) for x in d["devices"]]
assert devs == [(1, "drive-scsi0", 1024), (2, "drive-virtio1", 70144)], devs
v = d["vmaback"]
assert v["format"] == "vmaback" and v["kind"] == "full", v
assert [(x["name"], x["size"]) for x in v["drives"]] == [("drive-scsi0", 1000), ("drive-virtio1", 70000)], v
EOF
	# Compressed: the same, with "compression": "zstd"; from standard input too.
	zstd -q -c a.vma >a.vma.zst
	runin a.vma.zst vb list --json -
	expect_rc 0
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["compression"]=="zstd"' "$OUT" ||
		fail "list --json - of a .zst: compression is not zstd"
}

# vmaback.json: format, kind, version, creation time, exact sizes, cluster counts.
vmaback_json() {
	make_archive
	run vb config a.vma -c vmaback.json
	expect_rc 0
	python3 - "$OUT" "$(realpath src/d1)" <<'EOF' || fail "vmaback.json is not as designed"
import json, re, sys
v = json.load(open(sys.argv[1]))
assert v["format"] == "vmaback", v
assert v["kind"] == "full", v
assert re.match(r"^\d+\.\d+\.\d+", v["tool_version"]), v
assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$", v["created"]), v["created"]
d = v["drives"]
assert [x["name"] for x in d] == ["drive-scsi0", "drive-virtio1"], d
assert [x["dev_id"] for x in d] == [1, 2], d
assert [x["size"] for x in d] == [1000, 70000], d
assert [x["clusters"] for x in d] == [1, 2], d
assert d[0]["path"].endswith("src/d1"), d[0]["path"]
assert [x["source"] for x in d] == ["raw", "raw"], "source is not \"raw\": %s" % d
EOF
}

config_blobs() {
	make_archive
	run vb config a.vma
	expect_rc 0
	same src/qemu-server.conf "$OUT"
	run vb config a.vma -c other.fw
	expect_rc 0
	same src/other.fw "$OUT"
	runin a.vma vb config - -c other.fw
	expect_rc 0
	same src/other.fw "$OUT"
	run vb config a.vma -c nosuch.conf
	expect_fail 1 config 'no config blob named nosuch\.conf \(blobs: .*qemu-server\.conf.*\)'
	[ ! -s "$OUT" ] || fail "config of a missing blob printed on stdout"
}

# A config of exactly 65535 bytes is stored and printed back exactly.
config_largest() {
	mkdir src
	rand src/d 4096
	rand src/big.conf 65535
	run vb backup --drive d=src/d --config src/big.conf -o a.vma.zst
	expect_rc 0
	run vb config a.vma.zst -c big.conf
	expect_rc 0
	same src/big.conf "$OUT"
	run vb list a.vma.zst
	expect_out '^CFG: size: 65535 name: big\.conf$'
}

verify_ok() {
	make_archive
	run vb verify --quiet a.vma
	expect_rc 0
	[ ! -s "$OUT" ] && [ ! -s "$ERR" ] || fail "verify --quiet printed something"
	zstd -q -c a.vma >a.zst
	runin a.zst vb verify -
	expect_rc 0
	expect_out '^(-|standard input): OK \('
	# The exact line of the CLI contract.
	run vb verify a.vma
	expect_rc 0
	# 1 + 2 clusters; 1 + 16 + 2 blocks of 4 KiB hold data (random, never zero).
	local want="a.vma: OK (full, 2 drives, 3 clusters, 76.0 KiB stored)"
	[ "$(cat "$OUT")" = "$want" ] ||
		fail "verify printed '$(cat "$OUT")', expected '$want'"
}

# An archive without drives (configs only) is valid.
no_drives_vzdump() {
	have_forge || skip "vma_forge not built"
	printf 'memory: 1\n' >qemu-server.conf
	forge -o e.vma --config qemu-server.conf
	run vb list e.vma
	expect_rc 0
	expect_out '^CFG: size: 10 name: qemu-server\.conf$'
	grep -q '^DEV:' "$OUT" && fail "list shows a device in an archive without devices"
	run vb verify e.vma
	expect_rc 0
	expect_out '^e\.vma: OK \(.*0 drives, 0 clusters'
	run vb extract e.vma x
	expect_rc 0
	entries x qemu-server.conf
	run vb list --json e.vma
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["vmaback"] is None and d["devices"] == []' "$OUT" ||
		fail "list --json of a foreign archive: vmaback is not null"
}

# Proxmox's RAM state (a device named vmstate, as `vzdump` of a VM with its
# RAM writes it): list prints it as `vma list` does, not as a drive, and
# verify does not count it as one.
vmstate() {
	have_forge || skip "vma_forge not built"
	rand d.raw 200000
	rand ram.bin 300000
	forge -o v.vma --vmstate ram.bin drive-scsi0=d.raw
	run vb list v.vma
	expect_rc 0
	expect_out '^DEV: dev_id=1 size: 200192 devname: drive-scsi0$'
	expect_out '^VMSTATE: dev_id=2 memory: 300032$'
	! grep -q '^DEV:.*vmstate' "$OUT" || fail "list shows the RAM state as a drive"
	[ "$(cut -d: -f1 "$OUT" | uniq | tr '\n' ' ')" = "DEV VMSTATE CTIME " ] ||
		fail "list lines: $(cut -d: -f1 "$OUT" | tr '\n' ' ')"
	run vb list --json v.vma
	expect_rc 0
	[ "$(jq_py "$OUT" '[x["type"] for x in d["devices"]]')" = "['drive', 'vmstate']" ] ||
		fail "list --json: $(cat "$OUT")"
	run vb verify v.vma
	expect_rc 0
	expect_out '^v\.vma: OK \(proxmox, 1 drive and a RAM state, '
	# a drive is restored, the RAM state is not a drive
	run vb restore v.vma --to r
	expect_rc 0
	expect_err '1 drive restored'
	entries r disk-drive-scsi0.raw
}

tcase list_lines list_lines
tcase list_json list_json
tcase vmaback_json vmaback_json
tcase config_blobs config_blobs
tcase config_largest config_largest
tcase verify_ok verify_ok
tcase no_drives_vzdump no_drives_vzdump
tcase vmstate vmstate
