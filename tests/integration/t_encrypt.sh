# t_encrypt.sh: encrypted archives (doc/encryption.md): round trips through
# every reader with --key, from a file and from a pipe; a missing or wrong
# key, truncation, a flipped byte, reordered chunks (exit 3 naming the
# offset); recipient mode; passphrase-protected keys; decrypt piped to the
# plain readers; the state records the key id, never a key.
. "$T_SRCDIR/lib.sh"

HDR=132          # the header's size
SEALED=65552     # a chunk: 64 KiB of ciphertext and its 16-byte tag

# src/: two drives and a config; k.key a new key.
setup() {
	mkdir src
	rand src/d1 400000
	put src/d1 100000 65536 /dev/zero
	rand src/d2 4097
	printf 'memory: 64\nsecret-marker: Zq7Xv\n' >src/qemu-server.conf
	run vb key create k.key
	expect_rc 0
	mode_is k.key 600
	KID=$(cat "$OUT")
	echo "$KID" | grep -Eq '^[0-9a-f]{32}$' || fail "key create printed '$KID', not a key id"
}

# enc_backup OUT ARGS...: a backup of src/ encrypted with ARGS.
enc_backup() {
	local out=$1
	shift
	run vb backup --drive drive-scsi0=src/d1 --drive drive-scsi1=src/d2 \
		--config src/qemu-server.conf -o "$out" --quiet "$@"
	expect_rc 0
}

# check_reads FILE KEYARGS...: every reader gives back src/.
check_reads() {
	local f=$1 x=x.$RANDOM
	shift
	run vb list "$@" "$f"
	expect_rc 0
	expect_out 'DEV: dev_id=1 size: 400384 devname: drive-scsi0'
	run vb verify "$@" "$f"
	expect_rc 0
	expect_out "^$f: OK \\(.*2 drives"
	run vb config "$@" "$f"
	expect_rc 0
	same src/qemu-server.conf "$OUT"
	run vb extract "$@" "$f" "$x"
	expect_rc 0
	same src/d1 "$x/disk-drive-scsi0.raw"
	same src/d2 "$x/disk-drive-scsi1.raw"
	runin "$f" vb restore "$@" - --to "$x.r"
	expect_rc 0
	same src/d1 "$x.r/disk-drive-scsi0.raw"
	same src/d2 "$x.r/disk-drive-scsi1.raw"
}

roundtrip() {
	setup
	enc_backup a.vma.zst.enc --encrypt k.key
	mode_is a.vma.zst.enc 600
	[ "$(head -c 8 a.vma.zst.enc | od -An -c | tr -d ' ')" = 'VBCRYPT\0' ] ||
		fail "a.vma.zst.enc does not start with the encryption magic"
	! grep -q Zq7Xv a.vma.zst.enc || fail "the config is in plain text in the archive"
	check_reads a.vma.zst.enc --key k.key
	# uncompressed, encrypted
	enc_backup b.vma --encrypt k.key --compress none
	check_reads b.vma --key k.key
	! grep -q Zq7Xv b.vma || fail "the config is in plain text in b.vma"
}

no_key() {
	setup
	enc_backup a.enc --encrypt k.key --compress zstd
	run vb list a.enc
	expect_fail 2 list "encrypted to key $KID: give its key file with --key"
	run vb extract a.enc x
	expect_fail 2 extract "encrypted to key $KID"
	absent x
}

wrong_key() {
	setup
	vb key create other.key >/dev/null
	enc_backup a.enc --encrypt k.key --compress zstd
	run vb verify --key other.key a.enc
	expect_fail 3 verify "wrong key: the archive is encrypted to key $KID"
	run vb restore --key other.key a.enc --to r
	expect_fail 3 restore "wrong key"
	absent r
	run vb decrypt --key other.key a.enc
	expect_fail 3 decrypt "wrong key"
	[ ! -s "$OUT" ] || fail "decrypt with a wrong key wrote something"
}

# n_chunks FILE: how many chunks the file holds (the last may be short).
n_chunks() {
	echo $(( ($(stat -c %s "$1") - HDR + SEALED - 1) / SEALED ))
}

truncated() {
	setup
	enc_backup a.enc --encrypt k.key --compress zstd
	[ "$(n_chunks a.enc)" -ge 4 ] || fail "a.enc holds fewer than 4 chunks"
	# at a chunk boundary: the last chunk is missing
	head -c $((HDR + 2 * SEALED)) a.enc >cut1.enc
	run vb verify --key k.key cut1.enc
	expect_fail 3 verify "truncated encrypted archive: chunk 2 at offset $((HDR + 2 * SEALED)) is missing"
	# inside a chunk
	head -c $((HDR + 2 * SEALED + 1000)) a.enc >cut2.enc
	run vb verify --key k.key cut2.enc
	expect_fail 3 verify "chunk 2 at offset $((HDR + 2 * SEALED)) does not authenticate"
	# inside the header
	head -c 100 a.enc >cut3.enc
	run vb list --key k.key cut3.enc
	expect_fail 3 list "truncated encryption header"
	# one byte less
	head -c $(($(stat -c %s a.enc) - 1)) a.enc >cut4.enc
	run vb extract --key k.key cut4.enc x
	expect_fail 3 extract "does not authenticate"
	# extra bytes after the last chunk
	cp a.enc long.enc
	printf 'x' >>long.enc
	run vb verify --key k.key long.enc
	expect_fail 3 verify "data after the last encrypted chunk|chunk [0-9]+ at offset [0-9]+ does not authenticate"
}

flipped() {
	setup
	enc_backup a.enc --encrypt k.key --compress zstd
	cp a.enc f1.enc
	flip f1.enc $((HDR + SEALED + 5000))
	run vb verify --key k.key f1.enc
	expect_fail 3 verify "encrypted chunk 1 at offset $((HDR + SEALED)) does not authenticate"
	runin f1.enc vb extract --key k.key - x
	expect_fail 3 extract "chunk 1 at offset $((HDR + SEALED))"
	# the key id, the nonce prefix, the wrapped key: the header
	for off in 12 40 70 110 120; do
		cp a.enc h.enc
		flip h.enc $off
		run vb list --key k.key h.enc
		expect_rc 3
	done
	# a flipped tag
	cp a.enc t.enc
	flip t.enc $((HDR + SEALED - 3))
	run vb verify --key k.key t.enc
	expect_fail 3 verify "chunk 0 at offset $HDR does not authenticate"
}

reordered() {
	setup
	enc_backup a.enc --encrypt k.key --compress zstd
	# chunks 1 and 2 swapped
	{
		head -c $((HDR + SEALED)) a.enc
		tail -c +$((HDR + 2 * SEALED + 1)) a.enc | head -c $SEALED
		tail -c +$((HDR + SEALED + 1)) a.enc | head -c $SEALED
		tail -c +$((HDR + 3 * SEALED + 1)) a.enc
	} >swap.enc
	size_is swap.enc "$(stat -c %s a.enc)"
	run vb verify --key k.key swap.enc
	expect_fail 3 verify "chunk 1 at offset $((HDR + SEALED)) does not authenticate"
	# a chunk spliced in from another archive of the same key
	enc_backup b.enc --encrypt k.key --compress zstd
	{
		head -c $((HDR + SEALED)) a.enc
		tail -c +$((HDR + SEALED + 1)) b.enc | head -c $SEALED
		tail -c +$((HDR + 2 * SEALED + 1)) a.enc
	} >splice.enc
	run vb verify --key k.key splice.enc
	expect_fail 3 verify "chunk 1 at offset $((HDR + SEALED))"
	# the last chunk dropped after a full one: the previous is not marked last
	n=$(n_chunks a.enc)
	head -c $((HDR + (n - 1) * SEALED)) a.enc >drop.enc
	run vb verify --key k.key drop.enc
	expect_fail 3 verify "chunk $((n - 1)) at offset $((HDR + (n - 1) * SEALED)) is missing"
}

recipient() {
	setup
	run vb key public k.key k.pub
	expect_rc 0
	mode_is k.pub 600
	! grep -qi "$(sed -n 4p k.key)" k.pub || fail "the public key file holds the secret"
	run vb key id k.pub
	expect_rc 0
	[ "$(cat "$OUT")" = "$KID" ] || fail "key id k.pub: $(cat "$OUT"), expected $KID"
	enc_backup a.vma.zst.enc --recipient k.pub
	check_reads a.vma.zst.enc --key k.key
	# a public key does not decrypt
	run vb list --key k.pub a.vma.zst.enc
	expect_fail 2 list "a public key file: reading needs the secret key"
	run vb backup --drive d=src/d2 -o x.enc --encrypt k.key --recipient k.pub
	expect_fail 2 backup "either --encrypt KEYFILE or --recipient PUBFILE"
	absent x.enc
}

passphrase() {
	mkdir src
	rand src/d1 200000
	printf 'correct horse\n' >pass
	printf 'wrong horse\n' >bad
	run vb key create --passphrase-file pass p.key
	expect_rc 0
	KID=$(cat "$OUT")
	! grep -q "^vmaback-secret-key-v1$" p.key || fail "p.key is not wrapped"
	run vb backup --drive d=src/d1 -o a.enc --compress zstd --quiet --encrypt p.key
	expect_fail 2 backup "protected by a passphrase"
	absent a.enc
	VMABACK_PASSPHRASE_FILE=pass run vb backup --drive d=src/d1 -o a.enc --compress zstd \
		--quiet --encrypt p.key
	expect_rc 0
	VMABACK_PASSPHRASE_FILE=pass run vb extract --key p.key a.enc x
	expect_rc 0
	same src/d1 x/disk-d.raw
	VMABACK_PASSPHRASE_FILE=bad run vb list --key p.key a.enc
	expect_fail 2 list "wrong passphrase"
	run vb key id --passphrase-file pass p.key
	expect_rc 0
	[ "$(cat "$OUT")" = "$KID" ] || fail "key id: $(cat "$OUT"), expected $KID"
	run vb key public --passphrase-file pass p.key p.pub
	expect_rc 0
	run vb key id p.pub
	[ "$(cat "$OUT")" = "$KID" ] || fail "key id p.pub: $(cat "$OUT"), expected $KID"
}

paper() {
	mkdir src
	rand src/d1 100000
	run vb key create --paper k.key
	expect_rc 0
	same k.key "$OUT"
	# typed back by hand: spaces for dashes, capitals
	grep -v '^#' k.key | sed '2,$y/abcdef-/ABCDEF /' >typed.key
	run vb key id typed.key
	expect_rc 0
	[ "$(cat "$OUT")" = "$(vb key id k.key)" ] || fail "the typed key has another id"
	# a typo is caught by the check digits
	awk 'NR == 2 { c = substr($0, 1, 1); $0 = (c == "1" ? "2" : "1") substr($0, 2) } 1' \
		typed.key >typo.key
	cmp -s typed.key typo.key && fail "typo.key has no typo"
	run vb key id typo.key
	expect_fail 2 key "check digits do not match|not a vmaback key file"
	run vb key create k.key
	expect_fail 2 key "k.key"
}

decrypt_pipe() {
	setup
	enc_backup a.enc --encrypt k.key --compress zstd
	enc_backup plain.vma.zst
	run vb decrypt --key k.key a.enc
	expect_rc 0
	cp "$OUT" dec.vma.zst
	is_zstd dec.vma.zst
	zstd -q -t dec.vma.zst || fail "decrypt did not give a valid zstd stream"
	check_reads dec.vma.zst
	# piped into the plain readers, and from standard input
	vb decrypt --key k.key - <a.enc | vb extract - x || fail "decrypt | extract - failed"
	same src/d1 x/disk-drive-scsi0.raw
	run vb decrypt --key k.key dec.vma.zst
	expect_fail 2 decrypt "not an encrypted archive"
	head -c $((HDR + SEALED)) a.enc >cut.enc
	run vb decrypt --key k.key cut.enc
	expect_fail 3 decrypt "chunk 1 at offset $((HDR + SEALED)) is missing"
}

state_key_id() {
	setup
	mkdir st
	run vb backup --drive drive-scsi0=src/d1 --set s --state-dir st -o a.enc --compress zstd \
		--quiet --encrypt k.key
	expect_rc 0
	[ "$(jq_py st/s/state.json 'd["checkpoints"][-1].get("key_id")')" = "$KID" ] ||
		fail "the state does not record key id $KID: $(cat st/s/state.json | head -c 600)"
	sec=$(grep -v '^#' k.key | sed 1d | tr -d '\n-' | cut -c1-64)
	! grep -rqi "$sec" st || fail "the state holds the secret key"
	run vb checkpoints --set s --state-dir st --json
	expect_rc 0
	expect_out "\"key_id\": ?\"$KID\""
	run vb verify --deep --set s --state-dir st
	expect_fail 2 verify "encrypted to key $KID: give its key file with --key"
	run vb verify --deep --set s --state-dir st --key k.key
	expect_rc 0
	run vb backup --drive drive-scsi0=src/d1 --set s --state-dir st -o b.enc --compress zstd \
		--quiet --encrypt k.key
	expect_rc 0
	run vb restore --key k.key a.enc b.enc --to r
	expect_rc 0
	same src/d1 r/disk-drive-scsi0.raw
	run vb merge --key k.key -o m.vma.zst.enc a.enc b.enc
	expect_rc 0
	! grep -q Zq7Xv m.vma.zst.enc || fail "merge wrote the config in plain text"
	run vb extract m.vma.zst.enc m
	expect_fail 2 extract "encrypted to key $KID"
	run vb extract --key k.key m.vma.zst.enc m
	expect_rc 0
	same src/d1 m/disk-drive-scsi0.raw
	vb key create k2.key >/dev/null
	vb key public k2.key k2.pub
	run vb merge --key k.key --recipient k2.pub -o m2.enc a.enc b.enc
	expect_rc 0
	run vb verify --key k2.key m2.enc
	expect_rc 0
	# a key rotated within the chain: both keys given
	run vb backup --drive drive-scsi0=src/d1 --set s --state-dir st -o c.enc --compress zstd \
		--quiet --encrypt k2.key
	expect_rc 0
	run vb restore --key k.key a.enc b.enc c.enc --to r3
	expect_fail 3 restore "c.enc: wrong key"
	run vb restore --key k.key --key k2.key a.enc b.enc c.enc --to r3
	expect_rc 0
	same src/d1 r3/disk-drive-scsi0.raw
	run vb verify --deep --set s --state-dir st --key k.key --key k2.key
	expect_rc 0
}

# doc/encryption.md read by a second implementation (crypt_ref.py, from
# the document alone): it decrypts what vmaback writes, vmaback reads what
# it writes, and both derive the same key id.
reference() {
	python3 -c 'import cryptography' 2>/dev/null || skip "python3-cryptography missing"
	setup
	ref="python3 $T_SRCDIR/crypt_ref.py"
	[ "$($ref keyid k.key)" = "$KID" ] || fail "crypt_ref.py derives another key id"
	enc_backup a.enc --encrypt k.key --compress zstd
	enc_backup plain.vma.zst
	$ref decrypt k.key a.enc dec.vma.zst || fail "crypt_ref.py cannot decrypt a.enc"
	check_reads dec.vma.zst
	vb key public k.key k.pub
	$ref encrypt k.pub plain.vma.zst ref.enc || fail "crypt_ref.py cannot encrypt"
	check_reads ref.enc --key k.key
	# passphrase-protected key files, and an empty last chunk
	printf 'pw\n' >pw
	vb key create --passphrase-file pw p.key >/dev/null
	VMABACK_PASSPHRASE_FILE=pw run vb backup --drive d=src/d2 -o p.enc --compress zstd \
		--quiet --encrypt p.key
	expect_rc 0
	$ref decrypt p.key p.enc p.vma.zst pw || fail "crypt_ref.py cannot read a passphrase key"
	zstd -q -t p.vma.zst || fail "crypt_ref.py's plaintext is not zstd"
	# a signed, encrypted archive
	enc_backup s.enc --encrypt k.key --sign k.key --compress zstd
	$ref checksig k.pub s.enc || fail "crypt_ref.py does not accept vmaback's signature"
	$ref decrypt k.key s.enc s.vma.zst || fail "crypt_ref.py cannot decrypt a signed archive"
	check_reads s.vma.zst
}

# backup --sign: a trailer that every reader skips; verify --pubkey checks
# it with the public key only, also on an encrypted archive and on a pipe.
signed() {
	setup
	vb key public k.key k.pub
	vb key create other.key >/dev/null
	vb key public other.key other.pub
	mkdir st
	enc_backup s.vma.zst --sign k.key --set s --state-dir st
	run vb verify --pubkey k.pub s.vma.zst
	expect_rc 0
	expect_out "^s.vma.zst: signature OK: signed by key $KID, [0-9]+ bytes, sha256 [0-9a-f]{64}$"
	check_reads s.vma.zst
	zstd -q -t s.vma.zst || fail "zstd does not skip the signature"
	run vb verify --deep --set s --state-dir st
	expect_rc 0
	runin s.vma.zst vb verify --pubkey k.pub -
	expect_rc 0
	run vb verify --pubkey other.pub s.vma.zst
	expect_fail 3 verify "signed by key $KID, not by"
	# a changed byte, a changed signature, no signature
	size=$(stat -c %s s.vma.zst)
	cp s.vma.zst c.vma.zst
	flip c.vma.zst 3000
	run vb verify --pubkey k.pub c.vma.zst
	expect_fail 3 verify "the archive differs from what key $KID signed"
	cp s.vma.zst g.vma.zst
	flip g.vma.zst $((size - 10))
	run vb verify --pubkey k.pub g.vma.zst
	expect_fail 3 verify "signature of key $KID does not verify"
	head -c $((size - 136)) s.vma.zst >n.vma.zst
	run vb verify --pubkey k.pub n.vma.zst
	expect_fail 3 verify "not signed"
	# signed and encrypted: checked without the secret key
	enc_backup se.enc --encrypt k.pub --sign k.key --compress zstd
	run vb verify --pubkey k.pub se.enc
	expect_rc 0
	check_reads se.enc --key k.key
	# through ssh-like pipes: decrypt skips it too
	vb decrypt --key k.key se.enc | zstd -q -t || fail "decrypt | zstd -t failed"
	run vb backup --drive d=src/d2 -o p.vma --compress none --sign k.key
	expect_fail 2 backup "no room for a signature"
	absent p.vma
}

# ls of a dump directory: an encrypted archive is unreadable without its
# key (named), listed with it.
dumpdir_ls() {
	setup
	mkdir dump st
	run vb backup -q -d drive-scsi0=src/d1 --dumpdir dump --vmid 100 --set s --state-dir st \
		--encrypt k.key
	expect_rc 0
	run vb ls --dumpdir dump
	expect_rc 0
	expect_out 'unreadable'
	expect_out "encrypted to key $KID: give its key file with --key"
	run vb ls --dumpdir dump --key k.key
	expect_rc 0
	expect_out '^[0-9-]+ [0-9:]+ +full .* complete '
	# named .enc after the archive extension (Proxmox, which cannot read
	# it, does not list it), an incremental too; the log keeps vzdump's name
	sleep 1
	run vb backup -q -d drive-scsi0=src/d1 --dumpdir dump --vmid 100 --set s --state-dir st \
		--encrypt k.key --mode incremental
	expect_rc 0
	[ "$(ls dump | grep -c '^vzdump-qemu-100-.*\.vma\.zst\.enc$')" = 1 ] || fail "full: $(ls dump)"
	[ "$(ls dump | grep -c '^vzdump-qemu-100-.*\.vmainc\.zst\.enc$')" = 1 ] ||
		fail "incremental: $(ls dump)"
	[ "$(ls dump | grep -c '^vzdump-qemu-100-[0-9_-]*\.log$')" = 2 ] || fail "logs: $(ls dump)"
	run vb ls --dumpdir dump --key k.key
	expect_rc 0
	expect_out ' +incremental .* complete '
}

tcase roundtrip roundtrip
tcase dumpdir_ls dumpdir_ls
tcase signed signed
tcase reference reference
tcase no_key no_key
tcase wrong_key wrong_key
tcase truncated truncated
tcase flipped flipped
tcase reordered reordered
tcase recipient recipient
tcase passphrase passphrase
tcase paper paper
tcase decrypt_pipe decrypt_pipe
tcase state_key_id state_key_id
