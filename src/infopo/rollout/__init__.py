"""Multi-turn rollouts as token sequences: the trajectory type and its token-in/token-out builder."""

from infopo.rollout.builder import ChatMarkers, TrajectoryBuilder
from infopo.rollout.trajectory import Span, Trajectory, Turn

__all__ = ["ChatMarkers", "Span", "Trajectory", "TrajectoryBuilder", "Turn"]
