"""seqpar: exact attention over a sequence split across ranks.

The PyTorch entry point is ``seqpar.torch`` (attention, shard, unshard, SeqparAttention); this
package itself imports nothing heavy.
"""

__version__ = "0.1.0"
