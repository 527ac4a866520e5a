"""tracelake.collector: the OTLP receiver that writes spans into ClickHouse."""
