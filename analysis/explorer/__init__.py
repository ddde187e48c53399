"""The explorer's maths: projections, geometry, selections, orderings."""
