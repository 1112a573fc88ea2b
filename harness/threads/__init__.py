"""The two threads of a chatload process (the uvloop loop thread and the gevent hub) and the one crossing between them; which thread a function belongs to, checked under CHATLOAD_CHECK_THREADS=1."""
