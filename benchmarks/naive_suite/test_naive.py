def test_naive_check(naive_check, naive_hosts):
    _, host, call = naive_check
    assert call(naive_hosts[host]) is not None
