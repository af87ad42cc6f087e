# zsh_complete.zsh COMPDIR BINDIR LINE (run by t_completions.sh): prints the words
# zsh's completion offers for LINE, one per line, by running a real interactive
# zsh on a pty (zsh/zpty) whose compadd is wrapped to print its matches.
zmodload zsh/zpty || exit 2
compdir=$1 bindir=$2 line=$3
init=$(mktemp)
trap 'rm -f $init' EXIT
cat >$init <<INIT
PROMPT=''
fpath=($compdir \$fpath)
path=($bindir \$path)
autoload -Uz compinit && compinit -u -D
bindkey '^I' complete-word
compadd() {
	local -a got
	builtin compadd -O got "\$@"
	local w
	for w in \$got; do print -r -- "MATCH:\$w"; done
	builtin compadd "\$@"
}
comppostfuncs=(vb_done)
vb_done() { print -r -- "DONE:"; exit 0 }
print -r -- READY:
INIT
zpty z zsh -f -i
zpty -w z "source $init"
local l
while zpty -r z l; do [[ $l == READY:* ]] && break; done
zpty -n -w z "$line"$'\t'
while zpty -r z l; do
	l=${l%$'\r'}
	l=${l%$'\n'}
	l=${l%$'\r'}
	case $l in
	*MATCH:*) print -r -- ${l#*MATCH:} ;;
	*DONE:*) break ;;
	esac
done
zpty -d z
