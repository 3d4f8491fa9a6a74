"""pilotfish.model"""
