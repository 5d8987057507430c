"""Memory figures from /proc."""
import os


def smaps_rollup(pid):
    """Every field of /proc/PID/smaps_rollup given in kB, in bytes: {name: bytes}."""
    fields = {}
    try:
        f = open(f"/proc/{pid}/smaps_rollup")
    except PermissionError as e:
        raise PermissionError(f"{e}: another user's or a non-dumpable process's memory map needs root "
                              "(kiln's workers are not dumpable)") from None
    with f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return fields


def rollup(pid):
    """(USS, PSS) of one process in bytes, from /proc/PID/smaps_rollup.
    USS is what the process alone holds: its private pages, clean or dirty."""
    fields = smaps_rollup(pid)
    return fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0), fields.get("Pss", 0)


def descendants(pid):
    """PID and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            pass
    return out


def tree_memory(pid):
    """(USS, PSS) in bytes summed over PID and its descendants."""
    uss = pss = 0
    for p in descendants(pid):
        try:
            u, s = rollup(p)
        except FileNotFoundError:
            continue
        uss += u
        pss += s
    return uss, pss


def mem_available():
    """MemAvailable of /proc/meminfo, in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")
