# bash completion for tcached(8)                           -*- shell-script -*-
#
# Installed as share/bash-completion/completions/tcached, where
# bash-completion loads it on the first <Tab> after `tcached`; or source it
# from ~/.bashrc.  It needs nothing from bash-completion itself.
# tests/integration/test_docs.py holds the option list below to
# `tcached --help`.

_tcached()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local options='--config --socket --db --ttl --max-entries --idle-timeout
        --max-clients --allow-uid --allow-gid --readonly-uid --readonly-gid
        --sync --log --version --help'

    COMPREPLY=()
    # --opt=value: bash splits it at the '=' (COMP_WORDBREAKS).
    if [[ $cur == = && $COMP_CWORD -gt 1 ]]; then
        cur=
    elif [[ $prev == = && $COMP_CWORD -gt 2 ]]; then
        prev=${COMP_WORDS[COMP_CWORD-2]}
    fi

    case $prev in
        --config | --socket | --db | --log)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0 ;;
        --allow-uid | --readonly-uid)
            COMPREPLY=($(compgen -u -- "$cur"))
            return 0 ;;
        --allow-gid | --readonly-gid)
            COMPREPLY=($(compgen -g -- "$cur"))
            return 0 ;;
        --sync)
            COMPREPLY=($(compgen -W 'normal full' -- "$cur"))
            return 0 ;;
        --ttl | --max-entries | --idle-timeout | --max-clients)
            return 0 ;;
    esac
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
    return 0
}
complete -F _tcached tcached
