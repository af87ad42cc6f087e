# vmaback.fish: fish completion for vmaback: commands, options, file names,
# --compress values, and for `extract -d` the drive names of the archive on the line.

set -l __vmaback_commands backup list config verify extract help

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
        switch $a
            case -d -c
                set skip 1
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

# Names of the archive on the line: DEV (drives) or CFG (config blobs).
function __vmaback_archive_names -a kind
    set -l archive (__vmaback_archive)
    or return
    test "$archive" != - -a -r "$archive"
    or return
    set -l prog (commandline -opc)[1]
    command -q $prog; or set prog vmaback
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

complete -c vmaback -f
complete -c vmaback -n "not __fish_seen_subcommand_from $__vmaback_commands" -l help -d 'Show help'
complete -c vmaback -n "not __fish_seen_subcommand_from $__vmaback_commands" -l version -d 'Show the version'
complete -c vmaback -n "not __fish_seen_subcommand_from $__vmaback_commands" -a backup -d 'Back up drives into a VMA archive'
complete -c vmaback -n "not __fish_seen_subcommand_from $__vmaback_commands" -a list -d 'List configs and devices of an archive'
complete -c vmaback -n "not __fish_seen_subcommand_from $__vmaback_commands" -a config -d 'Print a config blob of an archive'
complete -c vmaback -n "not __fish_seen_subcommand_from $__vmaback_commands" -a verify -d 'Read and check a whole archive'
complete -c vmaback -n "not __fish_seen_subcommand_from $__vmaback_commands" -a extract -d 'Extract drives and configs into a new directory'
complete -c vmaback -n "not __fish_seen_subcommand_from $__vmaback_commands" -a help -d 'Show the help of a command'

complete -c vmaback -n '__fish_seen_subcommand_from help' -a "$__vmaback_commands"

# backup
complete -c vmaback -n '__fish_seen_subcommand_from backup' -l drive -r -F -d 'NAME=PATH: a drive (file or block device)'
complete -c vmaback -n '__fish_seen_subcommand_from backup' -l config -r -F -d 'Store a config file as a blob'
complete -c vmaback -n '__fish_seen_subcommand_from backup' -s o -r -F -d 'Output archive (- for stdout)'
complete -c vmaback -n '__fish_seen_subcommand_from backup' -l force -d 'Replace an existing output file'
complete -c vmaback -n '__fish_seen_subcommand_from backup' -l compress -x -a 'none zstd' -d 'Compression'
complete -c vmaback -n '__fish_seen_subcommand_from backup' -l zstd-level -x -a '(seq 1 19)' -d 'zstd level (default 3)'
complete -c vmaback -n '__fish_seen_subcommand_from backup' -l zstd-threads -x -d 'zstd workers (0 = single-threaded)'
complete -c vmaback -n '__fish_seen_subcommand_from backup' -l quiet -d 'Print no summary'
complete -c vmaback -n '__fish_seen_subcommand_from backup' -l json -d 'Print the summary as JSON'

# list, config, verify, extract: an archive file
complete -c vmaback -n '__fish_seen_subcommand_from list config verify extract' -F
complete -c vmaback -n '__fish_seen_subcommand_from list' -l json -d 'Print JSON'
complete -c vmaback -n '__fish_seen_subcommand_from config' -s c -x -a '(__vmaback_archive_names CFG)' -d 'Blob name (default qemu-server.conf)'
complete -c vmaback -n '__fish_seen_subcommand_from verify' -l quiet -d 'Print nothing on success'
complete -c vmaback -n '__fish_seen_subcommand_from extract' -s d -x -a '(__vmaback_drive_list)' -d 'Drives to extract: NAME[,NAME...]'
complete -c vmaback -n '__fish_seen_subcommand_from backup list config verify extract' -l help -d 'Show help'
