"""``binhub apply``: Kafka topics written by ``binhub stream`` applied to MySQL/MariaDB, exactly once,
through the MySQL sink (:mod:`binhub.sinks.mysql`)."""

from binhub.apply.config import KafkaApplyConfig, KafkaSource
from binhub.apply.kafka_apply import KafkaApply
from binhub.apply.metrics import ApplyMetrics

__all__ = ["ApplyMetrics", "KafkaApply", "KafkaApplyConfig", "KafkaSource"]
