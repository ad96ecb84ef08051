# bash completion for tcache(1)                            -*- shell-script -*-
#
# Installed as share/bash-completion/completions/tcache, where
# bash-completion loads it on the first <Tab> after `tcache`; or source it
# from ~/.bashrc.  It needs nothing from bash-completion itself.
# tests/integration/test_docs.py holds the option lists below to
# `tcache help COMMAND`.

# The options each command takes besides the common ones.
_tcache_options()
{
    case $1 in
        status | gc) ;;
        stats) echo --reset --prometheus ;;
        top) echo --interval --count ;;
        hash) ;;
        key | explain) echo --test --dep --env ;;
        lookup) echo --test --dep --env -q --quiet ;;
        record) echo --test --dep --env --outcome --duration --ttl --message ;;
        run) echo --test --dep --env --ttl -q --quiet ;;
        invalidate) echo --test --key --all --dry-run ;;
        ls) echo --test --path ;;
        *) return 1 ;;
    esac
}

_tcache()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local cword=$COMP_CWORD cmd i w
    local commands='status stats top hash key lookup record run invalidate ls
        explain gc help'
    local common='--json --socket --timeout --project --root -h --help'
    local witharg='--socket|--timeout|--project|--root|--test|--dep|--env|--outcome|--duration|--message|--ttl|--key|--path|--interval|--count'

    COMPREPLY=()
    # --opt=value: bash splits it at the '=' (COMP_WORDBREAKS).
    if [[ $cur == = && $cword -gt 1 ]]; then
        cur=
    elif [[ $prev == = && $cword -gt 2 ]]; then
        prev=${COMP_WORDS[cword-2]}
    fi

    if ((cword == 1)); then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W '-h --help --version' -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return 0
    fi
    cmd=${COMP_WORDS[1]}

    if [[ $cmd == help ]]; then
        ((cword == 2)) &&
            COMPREPLY=($(compgen -W "$commands -h --help" -- "$cur"))
        return 0
    fi
    _tcache_options "$cmd" >/dev/null || return 0

    # The argument of an option.
    case $prev in
        --socket | --dep | --path)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0 ;;
        --root)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -d -- "$cur"))
            return 0 ;;
        --env)
            COMPREPLY=($(compgen -e -- "$cur"))
            return 0 ;;
        --outcome)
            COMPREPLY=($(compgen -W 'pass fail skip error' -- "$cur"))
            return 0 ;;
        --timeout | --ttl | --duration | --project | --test | --message | --key)
            return 0 ;;
    esac

    # run: options end at the command, which is completed from PATH, and
    # after it come the command's own arguments.
    if [[ $cmd == run ]]; then
        for ((i = 2; i < cword; i++)); do
            w=${COMP_WORDS[i]}
            if [[ $w == -- ]]; then
                i=$((i + 1))
                break
            elif [[ ${COMP_WORDS[i+1]} == = ]]; then
                i=$((i + 2))
            elif [[ $w =~ ^($witharg)$ ]]; then
                i=$((i + 1))
            elif [[ $w != -* ]]; then
                break
            fi
        done
        if ((i < cword)); then
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
        elif ((i == cword)) && [[ ${COMP_WORDS[i-1]} == -- || $cur != -* ]]; then
            COMPREPLY=($(compgen -c -- "$cur"))
            return 0
        fi
    fi

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_tcache_options "$cmd") $common" -- "$cur"))
    elif [[ $cmd == hash || $cmd == invalidate ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
}
complete -F _tcache tcache
