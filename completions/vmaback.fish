# vmaback.fish: fish completion for vmaback: every command and option, the
# values of --mode/--progress/--compress, files, backup sets, checkpoints,
# and drive names of the archive on the line (for -d and --target).

set -l __vmaback_commands backup restore list verify extract config merge checkpoints commit ls prune recover serve key decrypt help

# Options that take a value (their values are not positional arguments).
set -g __vmaback_value_opts -d --drive -c --config -o --output --output-cmd --compress \
    --zstd-level --zstd-threads --bwlimit --set --state-dir --mode --since --checkpoint \
    --progress --log-file --config-file --to --target --define --remove --dumpdir --vmid \
    --name-template --notes --hook --bitmap --lockwait --max-chain --full-every --threshold --qmp --scratch-dir --qga --domain --connect --domains --keep-last --keep-hourly --keep-daily --keep-weekly \
    --keep-monthly --keep-yearly

# The first positional argument after the command (the archive), if any.
function __vmaback_archive
    set -l args (commandline -opc)
    set -e args[1]
    set -l seen_cmd 0
    set -l skip 0
    for a in $args
        if test $skip = 1
            set skip 0
            continue
        end
        if contains -- $a $__vmaback_value_opts
            set skip 1
            continue
        end
        switch $a
            case '-*'
            case '*'
                if test $seen_cmd = 0
                    set seen_cmd 1
                else
                    echo $a
                    return 0
                end
        end
    end
    return 1
end

# The value of option $argv[1] on the line (--opt VALUE or --opt=VALUE).
function __vmaback_opt_value -a opt
    set -l args (commandline -opc)
    set -l n (count $args)
    for i in (seq $n)
        if test "$args[$i]" = $opt; and test $i -lt $n
            echo $args[(math $i + 1)]
            return 0
        end
        if string match -q -- "$opt=*" $args[$i]
            string replace -- "$opt=" '' $args[$i]
            return 0
        end
    end
    return 1
end

function __vmaback_prog
    set -l prog (commandline -opc)[1]
    command -q $prog; or set prog vmaback
    echo $prog
end

# Names of the archive on the line: DEV (drives) or CFG (config blobs).
function __vmaback_archive_names -a kind
    set -l archive (__vmaback_archive)
    or return
    test "$archive" != - -a -r "$archive"
    or return
    set -l prog (__vmaback_prog)
    if test $kind = DEV
        $prog list $archive 2>/dev/null | string replace -rf '^DEV: dev_id=\d+ size: \d+ devname: ' ''
    else
        $prog list $archive 2>/dev/null | string replace -rf '^CFG: size: \d+ name: ' ''
    end
end

# -d takes NAME[,NAME...]: offer each name after what is already typed.
function __vmaback_drive_list
    set -l tok (commandline -ct)
    set -l head ''
    if string match -q '*,*' -- $tok
        set head (string replace -r '[^,]*$' '' -- $tok)
    end
    for n in (__vmaback_archive_names DEV)
        echo $head$n
    end
end

# --target NAME=PATH: drive names, then files.
function __vmaback_target
    set -l tok (commandline -ct)
    if string match -q '*=*' -- $tok
        set -l name (string replace -r '=.*' '' -- $tok)
        for f in (__fish_complete_path (string replace -r '^[^=]*=' '' -- $tok))
            echo $name=$f
        end
    else
        for n in (__vmaback_archive_names DEV)
            echo $n=
        end
    end
end

function __vmaback_state_dir
    set -l d (__vmaback_opt_value --state-dir)
    and begin
        echo $d
        return
    end
    if test (id -u) = 0
        echo /var/lib/vmaback
    else if set -q XDG_STATE_HOME
        echo $XDG_STATE_HOME/vmaback
    else
        echo $HOME/.local/state/vmaback
    end
end

function __vmaback_sets
    set -l d (__vmaback_state_dir)
    test -d $d; or return
    for s in $d/*/
        basename $s
    end
end

# Checkpoints of the --set on the line ("pending": only those).
function __vmaback_checkpoints -a only
    set -l set (__vmaback_opt_value --set); or return
    set -l sd
    set -l d (__vmaback_opt_value --state-dir); and set sd --state-dir $d
    set -l prog (__vmaback_prog)
    if test "$only" = pending
        $prog checkpoints --set $set $sd 2>/dev/null | string match -r '^\S+(?=.*\[pending\]$)'
    else
        $prog checkpoints --set $set $sd 2>/dev/null | string match -r '^\S+'
    end
end

complete -c vmaback -f
set -l nocmd "not __fish_seen_subcommand_from $__vmaback_commands"
complete -c vmaback -n $nocmd -s h -l help -d 'Show help'
complete -c vmaback -n $nocmd -s V -l version -d 'Show the version'
complete -c vmaback -n $nocmd -a backup -d 'Back up drives into one VMA archive'
complete -c vmaback -n $nocmd -a restore -d 'Restore a full archive and its incrementals'
complete -c vmaback -n $nocmd -a list -d 'List the configs and drives of an archive'
complete -c vmaback -n $nocmd -a verify -d 'Check an archive, or a checkpoint chain'
complete -c vmaback -n $nocmd -a extract -d 'Extract an archive into a new directory'
complete -c vmaback -n $nocmd -a config -d 'Print a config blob of an archive'
complete -c vmaback -n $nocmd -a merge -d 'Merge a chain into a synthetic full archive'
complete -c vmaback -n $nocmd -a checkpoints -d 'List or remove the checkpoints of a set'
complete -c vmaback -n $nocmd -a commit -d 'Commit a pending checkpoint'
complete -c vmaback -n $nocmd -a recover -d 'Remove what an interrupted backup left in a running VM'
complete -c vmaback -n $nocmd -a ls -d 'List the backups of a dump directory or a set'
complete -c vmaback -n $nocmd -a prune -d 'Remove old backups of a set by keep rules'
complete -c vmaback -n $nocmd -a serve -d 'Serve a backup point as read-only NBD disks'
complete -c vmaback -n $nocmd -a key -d 'Create an encryption key, export its public part, show its id'
complete -c vmaback -n $nocmd -a decrypt -d 'Write an encrypted archive\'s plain form to stdout'
complete -c vmaback -n $nocmd -a help -d 'Show the help of a command'

complete -c vmaback -n '__fish_seen_subcommand_from help' -a "$__vmaback_commands"
complete -c vmaback -n "__fish_seen_subcommand_from $__vmaback_commands; and not __fish_seen_subcommand_from help" -s h -l help -d 'Show help'

# backup
set -l b '__fish_seen_subcommand_from backup'
complete -c vmaback -n $b -s d -l drive -r -F -d 'NAME=PATH: a drive (file or block device)'
complete -c vmaback -n $b -s c -l config -r -F -d 'Store a config file as a blob'
complete -c vmaback -n $b -s o -l output -r -F -d 'Archive file (- for stdout)'
complete -c vmaback -n $b -l output-cmd -x -d 'Write the archive to this shell command'
complete -c vmaback -n $b -s f -l force -d 'Replace an existing output file'
complete -c vmaback -n $b -l compress -x -a 'none zstd' -d 'Compression'
complete -c vmaback -n $b -l zstd-level -x -a '(seq 1 19)' -d 'zstd level (default 3)'
complete -c vmaback -n $b -l zstd-threads -x -a '0 1 2 4 8' -d 'zstd workers (0: none)'
complete -c vmaback -n $b -l bwlimit -x -a '800K 10M 50M 100M 1G' -d 'Read at most RATE per second'
complete -c vmaback -n $b -l set -x -a '(__vmaback_sets)' -d 'Backup set'
complete -c vmaback -n $b -l state-dir -x -a '(__fish_complete_directories)' -d 'State directory'
complete -c vmaback -n $b -l mode -x -a 'auto full incremental differential' -d 'Backup mode'
complete -c vmaback -n $b -l since -x -a '(__vmaback_checkpoints)' -d 'Base of a differential'
complete -c vmaback -n $b -l checkpoint -x -d 'Name of the new checkpoint'
complete -c vmaback -n $b -l no-commit -d 'Leave the checkpoint pending'
complete -c vmaback -n $b -l commit -d 'Commit the checkpoint after -o - too'
complete -c vmaback -n $b -l bitmap -r -d 'Dirty bitmap NAME or DRIVE=NAME of the sources'
complete -c vmaback -n $b -l no-bitmap -d 'Find changes by reading the drives'
complete -c vmaback -n $b -s q -l quiet -d 'Print only errors'
complete -c vmaback -n $b -l progress -x -a 'auto bar log none' -d 'Progress display'
complete -c vmaback -n $b -l log-file -r -F -d 'Append messages to FILE'
complete -c vmaback -n $b -l hook -r -F -d 'Run CMD PHASE at each phase of the job'
complete -c vmaback -n $b -l lockwait -x -a '1 5 10 30 60 180' -d 'Wait up to MIN minutes for the set lock'
complete -c vmaback -n $b -l max-chain -x -a '7 14 30 31' -d 'Full backup once the chain holds N backups'
complete -c vmaback -n $b -l full-every -x -a '7 14 30' -d 'Full backup once the latest full is DAYS old'
complete -c vmaback -n $b -l threshold -x -a '10M 100M 1G' -d 'Keep an incremental only if SIZE changed'
complete -c vmaback -n $b -l qmp -r -F -d 'The running VM\'s QMP socket'
complete -c vmaback -n $b -l scratch-dir -x -a '(__fish_complete_directories)' -d 'Where the point-in-time copies go'
complete -c vmaback -n $b -l fsfreeze -d 'Freeze the guest\'s file systems (with --qga)'
complete -c vmaback -n $b -l qga -r -F -d 'The guest agent\'s socket'
complete -c vmaback -n $b -l domain -x -a '(virsh -q list --name 2>/dev/null)' -d 'The running libvirt domain'
complete -c vmaback -n $b -l connect -x -a 'qemu:///system qemu:///session' -d 'libvirt\'s connection URI'
complete -c vmaback -n $b -l all -d 'Every running libvirt domain, each in its own set'
complete -c vmaback -n $b -l domains -x -a '(virsh -q list --all --name 2>/dev/null)' -d 'These libvirt domains (A,B), each in its own set'
complete -c vmaback -n $b -l include-stopped -d 'Stopped domains too, read offline from their images'
complete -c vmaback -n $b -l json -d 'Print the summary as JSON'
complete -c vmaback -n $b -l config-file -r -F -d 'Read options from a JSON file'
complete -c vmaback -n $b -l dumpdir -x -a '(__fish_complete_directories)' -d 'Write the archive into DIR, named as vzdump'
complete -c vmaback -n $b -l vmid -x -d 'VM id in the archive name'
complete -c vmaback -n $b -l name-template -x -d 'Archive name: {vmid}, {set}, {date}'
complete -c vmaback -n $b -l notes -x -d 'Write ARCHIVE.notes'
complete -c vmaback -n $b -l protected -d 'Create ARCHIVE.protected (prune keeps it)'
complete -c vmaback -n $b -l encrypt -r -F -d 'Encrypt the archive to the key of KEYFILE'
complete -c vmaback -n $b -l recipient -r -F -d 'Encrypt the archive to a public key'
complete -c vmaback -n $b -l sign -r -F -d 'Sign the archive with the key of KEYFILE'

# restore
set -l r '__fish_seen_subcommand_from restore'
complete -c vmaback -n $r -F
complete -c vmaback -n $r -l to -x -a '(__fish_complete_directories)' -d 'Write DIR/disk-NAME.raw'
complete -c vmaback -n $r -l target -x -a '(__vmaback_target)' -d 'NAME=PATH: write a drive to PATH'
complete -c vmaback -n $r -s d -l drive -x -a '(__vmaback_drive_list)' -d 'Only these drives'
complete -c vmaback -n $r -l define -x -d 'Then define this libvirt domain with the restored disks'
complete -c vmaback -n $r -l connect -x -a 'qemu:///system qemu:///session' -d 'libvirt\'s connection URI'
complete -c vmaback -n $r -s f -l force -d 'Replace files; write to block devices'
complete -c vmaback -n $r -s q -l quiet -d 'Print only errors'

# merge
set -l m '__fish_seen_subcommand_from merge'
complete -c vmaback -n $m -F
complete -c vmaback -n $m -s o -l output -r -F -d 'The new archive (- for stdout)'
complete -c vmaback -n $m -s f -l force -d 'Replace an existing output file'
complete -c vmaback -n $m -l compress -x -a 'none zstd' -d 'Compression'
complete -c vmaback -n $m -l zstd-level -x -a '(seq 1 19)' -d 'zstd level (default 3)'
complete -c vmaback -n $m -s q -l quiet -d 'Print only errors'

# list, verify, extract, config: archives
complete -c vmaback -n '__fish_seen_subcommand_from list verify extract config' -F
complete -c vmaback -n '__fish_seen_subcommand_from list' -s j -l json -d 'Print JSON'
set -l v '__fish_seen_subcommand_from verify'
complete -c vmaback -n $v -s q -l quiet -d 'Print nothing on success'
complete -c vmaback -n $v -l deep -d 'Verify a checkpoint chain against the state'
complete -c vmaback -n $v -l set -x -a '(__vmaback_sets)' -d 'Backup set'
complete -c vmaback -n $v -l state-dir -x -a '(__fish_complete_directories)' -d 'State directory'
complete -c vmaback -n $v -l checkpoint -x -a '(__vmaback_checkpoints)' -d 'Checkpoint to verify'
complete -c vmaback -n $v -l pubkey -r -F -d 'Check the signature with this public key'
complete -c vmaback -n '__fish_seen_subcommand_from extract' -s d -l drive -x -a '(__vmaback_drive_list)' -d 'Only these drives: NAME[,NAME...]'
complete -c vmaback -n '__fish_seen_subcommand_from extract' -s q -l quiet -d 'Print only errors'
complete -c vmaback -n '__fish_seen_subcommand_from config' -s c -l config -x -a '(__vmaback_archive_names CFG)' -d 'Blob name (default qemu-server.conf)'

# serve: archives, then where to listen
set -l sv '__fish_seen_subcommand_from serve'
complete -c vmaback -n $sv -F
complete -c vmaback -n $sv -s d -l drive -x -a '(__vmaback_drive_list)' -d 'Serve only these drives: NAME[,NAME...]'
complete -c vmaback -n $sv -l socket -r -F -d 'Listen on this unix socket'
complete -c vmaback -n $sv -l port -x -d 'Listen on this TCP port'
complete -c vmaback -n $sv -l bind -x -d 'With --port: listen on this address only'
complete -c vmaback -n $sv -l once -d 'End when the first client disconnects'
complete -c vmaback -n $sv -l cache-dir -x -a '(__fish_complete_directories)' -d 'Decompress sequential archives here'
complete -c vmaback -n $sv -l overlay -x -a '(__fish_complete_directories)' -d 'A qcow2 overlay per export here'
complete -c vmaback -n $sv -s q -l quiet -d 'Print only errors'

# --key: every command that reads archives
complete -c vmaback -n '__fish_seen_subcommand_from restore merge list verify extract config ls serve decrypt' -l key -r -F -d 'Secret key of encrypted archives'
complete -c vmaback -n $m -l recipient -r -F -d 'Encrypt the merged archive to a public key'

# key: create, public, id
set -l ky '__fish_seen_subcommand_from key'
complete -c vmaback -n "$ky; and not __fish_seen_subcommand_from create public id" -x -a 'create public id'
complete -c vmaback -n "$ky; and __fish_seen_subcommand_from create public id" -F
complete -c vmaback -n $ky -l passphrase-file -r -F -d 'The passphrase, on the first line of FILE'
complete -c vmaback -n $ky -l paper -d 'create: print the key to keep on paper'
complete -c vmaback -n '__fish_seen_subcommand_from decrypt' -F

# checkpoints, commit
set -l k '__fish_seen_subcommand_from checkpoints commit'
complete -c vmaback -n $k -l set -x -a '(__vmaback_sets)' -d 'Backup set'
complete -c vmaback -n $k -l state-dir -x -a '(__fish_complete_directories)' -d 'State directory'
complete -c vmaback -n '__fish_seen_subcommand_from checkpoints' -l json -d 'Print the chain as JSON'
complete -c vmaback -n '__fish_seen_subcommand_from checkpoints' -l remove -x -a '(__vmaback_checkpoints)' -d 'Drop a checkpoint'
complete -c vmaback -n '__fish_seen_subcommand_from commit' -a '(__vmaback_checkpoints pending)' -d 'Pending checkpoint'

# recover
set -l rc '__fish_seen_subcommand_from recover'
complete -c vmaback -n $rc -l qmp -r -F -d 'The running VM\'s QMP socket'
complete -c vmaback -n $rc -l domain -x -a '(virsh -q list --name 2>/dev/null)' -d 'The running libvirt domain'
complete -c vmaback -n $rc -l connect -x -a 'qemu:///system qemu:///session' -d 'libvirt\'s connection URI'
complete -c vmaback -n $rc -l set -x -a '(__vmaback_sets)' -d 'Backup set'
complete -c vmaback -n $rc -l state-dir -x -a '(__fish_complete_directories)' -d 'State directory'
complete -c vmaback -n $rc -l scratch-dir -x -a '(__fish_complete_directories)' -d 'Where the scratch files went'

# ls, prune
set -l lp '__fish_seen_subcommand_from ls prune'
complete -c vmaback -n $lp -l set -x -a '(__vmaback_sets)' -d 'Backup set'
complete -c vmaback -n $lp -l state-dir -x -a '(__fish_complete_directories)' -d 'State directory'
complete -c vmaback -n $lp -l dumpdir -x -a '(__fish_complete_directories)' -d 'Dump directory'
complete -c vmaback -n '__fish_seen_subcommand_from ls' -l json -d 'Print JSON'
set -l p '__fish_seen_subcommand_from prune'
complete -c vmaback -n $p -l keep-last -x -a '0 1 2 3 5 7 10' -d 'Keep the N newest'
complete -c vmaback -n $p -l keep-hourly -x -a '0 1 2 3 6 12 24' -d 'Newest of N hours'
complete -c vmaback -n $p -l keep-daily -x -a '0 1 2 3 7 14 30' -d 'Newest of N days'
complete -c vmaback -n $p -l keep-weekly -x -a '0 1 2 4 8 12' -d 'Newest of N weeks'
complete -c vmaback -n $p -l keep-monthly -x -a '0 1 2 3 6 12' -d 'Newest of N months'
complete -c vmaback -n $p -l keep-yearly -x -a '0 1 2 3 5 10' -d 'Newest of N years'
complete -c vmaback -n $p -l dry-run -d 'Print what would go, and why'
complete -c vmaback -n $p -s q -l quiet -d 'Print only what is removed'
