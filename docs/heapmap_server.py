# a toy "server": 4 worker threads each build a cache of records, then evict
# 95% of it (keeping every 20th record), then the process idles.
import threading, time, os, sys
caches = []
def worker(n):
    recs = [("key%d-%d" % (n, i)).encode() * (20 + i % 200) for i in range(150000)]
    keep = recs[::20]
    del recs
    caches.append(keep)
ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
big = bytearray(64 << 20)            # one large buffer (a mapped chunk)
print(os.getpid(), flush=True)
time.sleep(float(sys.argv[1]))
